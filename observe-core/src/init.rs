//! `init()`: installs logs, metrics and traces and returns the guard that flushes them.
