//! Traces: tracer provider, OTLP export, sampling and drop counting.
