//! Structured JSON logs: a `tracing-subscriber` layer, its writers, and redaction.
