//! RED metrics on a Prometheus registry, exposition, exemplars and the cardinality guard.
