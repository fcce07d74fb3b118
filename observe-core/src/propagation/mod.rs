//! W3C `traceparent`, `tracestate` and `baggage`: parsed and written without heap allocation.
