//! End-to-end tests: the real `tern` binary started as separate processes on loopback, with ports
//! chosen at run time, a real S3-compatible server, and a fault-injecting TCP proxy between
//! processes. Every process a test starts is stopped by the test, also on failure.
