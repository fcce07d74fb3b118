//! Configuration: the `Config` builder and `OTEL_*` / `OBSERVE_*` environment overrides.
