//! Real Prometheus, promtool and Alertmanager started on free loopback ports for a test.
