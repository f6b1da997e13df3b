package gateway

// StorePrefix is storePrefix, for package gateway_test.
var StorePrefix = storePrefix

// WatchFile is watchFile, for package gateway_test.
var WatchFile = watchFile
