"""The daemon's edge: the gRPC servers, servicers, interceptors and watch streams; it delegates to `runner.core`."""
