package gateway

// StorePrefix is storePrefix, for package gateway_test.
var StorePrefix = storePrefix
