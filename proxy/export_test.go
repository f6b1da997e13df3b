package proxy

// NewTransport is the upstream transport, for the benchmarks in package
// proxy_test: the plain ReverseProxy they compare with uses the same one.
var NewTransport = newTransport
