//! Framework-neutral tower layers for HTTP servers and clients (`http` 1.x types).
