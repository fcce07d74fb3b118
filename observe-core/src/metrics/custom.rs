//! Users' own metrics on the same registry and endpoint, with names checked at registration.
//!
//! A business counter, `orders_placed_total{outcome}`:
//!
//! ```
//! use observe_core::metrics::{Metrics, MetricsConfig, Format};
//! use observe_core::metrics::prometheus_client::encoding::EncodeLabelSet;
//! use observe_core::metrics::prometheus_client::metrics::{counter::Counter, family::Family};
//!
//! #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
//! struct Outcome {
//!     outcome: &'static str,
//! }
//!
//! let metrics = Metrics::new(MetricsConfig::default());
//! let orders = Family::<Outcome, Counter>::default();
//! metrics.register("orders_placed", "Orders placed, by outcome", orders.clone())?;
//! orders.get_or_create(&Outcome { outcome: "accepted" }).inc();
//!
//! let mut body = Vec::new();
//! metrics.encode(Format::PrometheusText, &mut body)?;
//! assert!(String::from_utf8(body)?.contains("orders_placed_total{outcome=\"accepted\"} 1"));
//!
//! // Names are checked now, not at scrape time.
//! assert!(metrics.register("orders-placed", "bad name", Counter::<u64>::default()).is_err());
//! assert!(metrics.register("orders_placed", "duplicate", Counter::<u64>::default()).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! (`#[derive(EncodeLabelSet)]` expands to `::prometheus_client::…` paths, so a crate using
//! the derive adds `prometheus-client` — the version re-exported here — to its own
//! dependencies; arrays or vectors of `(&str, &str)` pairs need nothing more.)
//!
//! Label names of a `#[derive(EncodeLabelSet)]` struct are its field names, valid by
//! construction; names starting with `__` (reserved by Prometheus) are rejected when the metric
//! already holds such a series at registration.

use std::sync::PoisonError;

use prometheus_client::registry::{Metric, Registry, Unit};

use super::Metrics;

/// Why a metric could not be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegisterError {
    /// The name is not `[a-zA-Z_:][a-zA-Z0-9_:]*`, or starts with the reserved `__`.
    #[error(
        "invalid metric name {0:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]* and not start with \"__\""
    )]
    InvalidName(String),
    /// A counter was given the `_total` suffix, which is added on output.
    #[error("counter name {0:?} must not end in \"_total\": the suffix is added on output")]
    TotalSuffix(String),
    /// A metric with this name (observe's own or an earlier registration) exists.
    #[error("a metric named {0:?} is already registered")]
    Duplicate(String),
    /// A label name of the metric is invalid or reserved.
    #[error("metric {metric:?} has an invalid label name {label:?}")]
    InvalidLabelName {
        /// The metric.
        metric: String,
        /// The offending label name.
        label: String,
    },
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, not starting with `__`.
pub(crate) fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !name.starts_with("__")
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
pub(crate) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// Label names in the sample lines of a Prometheus text body.
fn label_names(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some(open) = line.find('{') else { continue };
        let mut rest = &line[open + 1..];
        while let Some(eq) = rest.find("=\"") {
            out.push(rest[..eq].trim_start_matches(',').to_string());
            // Skip the quoted value, honouring escapes.
            let mut end = eq + 2;
            let bytes = rest.as_bytes();
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            rest = rest.get(end + 1..).unwrap_or("");
            if rest.starts_with('}') {
                break;
            }
        }
    }
    out
}

impl Metrics {
    /// Registers a user metric (any prometheus-client metric: `Counter`, `Gauge`, `Histogram`,
    /// `Family<…>`), served on the same endpoint. Checks the name, that a counter's name has no
    /// `_total` (added on output), that no metric of that name exists, and the label names of
    /// any series the metric already holds.
    ///
    /// ```
    /// # use observe_core::metrics::{Metrics, MetricsConfig, RegisterError};
    /// # use observe_core::metrics::prometheus_client::metrics::gauge::Gauge;
    /// let metrics = Metrics::new(MetricsConfig::default());
    /// metrics.register("queue_depth", "Jobs waiting", Gauge::<i64>::default()).unwrap();
    /// assert_eq!(
    ///     metrics.register("http_server_active_requests", "clash", Gauge::<i64>::default()),
    ///     Err(RegisterError::Duplicate("http_server_active_requests".into())),
    /// );
    /// ```
    pub fn register<M: Metric + Clone>(
        &self,
        name: &str,
        help: &str,
        metric: M,
    ) -> Result<(), RegisterError> {
        self.register_inner(name, help, None, metric)
    }

    /// Like [`Metrics::register`], with a unit appended to the name on output
    /// (`register_with_unit("job_duration", .., Unit::Seconds, ..)` is `job_duration_seconds`).
    ///
    /// ```
    /// # use observe_core::metrics::{Metrics, MetricsConfig};
    /// # use observe_core::metrics::prometheus_client::{metrics::histogram::Histogram, registry::Unit};
    /// let metrics = Metrics::new(MetricsConfig::default());
    /// let h = Histogram::new([0.1, 1.0, 10.0]);
    /// metrics.register_with_unit("job_duration", "Batch job duration", Unit::Seconds, h).unwrap();
    /// ```
    pub fn register_with_unit<M: Metric + Clone>(
        &self,
        name: &str,
        help: &str,
        unit: Unit,
        metric: M,
    ) -> Result<(), RegisterError> {
        self.register_inner(name, help, Some(unit), metric)
    }

    fn register_inner<M: Metric + Clone>(
        &self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        metric: M,
    ) -> Result<(), RegisterError> {
        if !valid_metric_name(name) {
            return Err(RegisterError::InvalidName(name.to_string()));
        }
        if let Some(Unit::Other(u)) = &unit {
            if !valid_label_name(u) {
                return Err(RegisterError::InvalidName(format!("{name}_{u}")));
            }
        }
        let is_counter = metric.metric_type() == prometheus_client::metrics::MetricType::Counter;
        if is_counter && name.ends_with("_total") {
            return Err(RegisterError::TotalSuffix(name.to_string()));
        }
        let full = match &unit {
            Some(u) => format!("{name}_{}", u.as_str()),
            None => name.to_string(),
        };
        // Check label names by encoding the metric alone, now rather than at scrape.
        let mut trial = Registry::default();
        trial.register(full.clone(), help, metric.clone());
        let mut body = String::new();
        if prometheus_client::encoding::prometheus_text::encode(&mut body, &trial).is_ok() {
            if let Some(bad) = label_names(&body)
                .into_iter()
                .find(|l| l != "le" && !valid_label_name(l))
            {
                return Err(RegisterError::InvalidLabelName {
                    metric: full,
                    label: bad,
                });
            }
        }
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        let exposed = if is_counter {
            format!("{full}_total")
        } else {
            full.clone()
        };
        if names.contains(&full) || names.contains(&exposed) {
            return Err(RegisterError::Duplicate(full));
        }
        names.insert(full);
        names.insert(exposed);
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match unit {
            Some(u) => registry.register_with_unit(name, help, u, metric),
            None => registry.register(name, help, metric),
        }
        Ok(())
    }

    /// Direct access to the prometheus-client registry, for what [`Metrics::register`] does
    /// not cover (collectors, sub-registries). Nothing is checked here: prefer `register`.
    ///
    /// ```
    /// # use observe_core::metrics::{Metrics, MetricsConfig};
    /// # use observe_core::metrics::prometheus_client::metrics::counter::Counter;
    /// let metrics = Metrics::new(MetricsConfig::default());
    /// metrics.registry_mut(|r| r.register("jobs", "Jobs run", Counter::<u64>::default()));
    /// ```
    pub fn registry_mut<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_metric_name("a:b_c9"));
        assert!(!valid_metric_name("9a"));
        assert!(!valid_metric_name("__a"));
        assert!(!valid_metric_name("a-b"));
        assert!(!valid_metric_name(""));
        assert!(valid_label_name("outcome"));
        assert!(!valid_label_name("a:b"));
    }

    #[test]
    fn label_names_are_found_past_escaped_values() {
        let body = "x_total{a=\"q\\\"},b=\\\"\",__c=\"v\"} 1\n";
        assert_eq!(label_names(body), vec!["a", "__c"]);
    }
}
