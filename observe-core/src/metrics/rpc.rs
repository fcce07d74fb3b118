//! gRPC server and client instruments: `rpc_server_call_duration_seconds`,
//! `rpc_client_call_duration_seconds` (semantic conventions 1.39 names) and the in-flight
//! gauges `rpc_server_active_calls` / `rpc_client_active_calls` (an observe addition: semantic
//! conventions define no RPC in-flight instrument).
//!
//! ```
//! use std::time::Duration;
//! use observe_core::metrics::{GrpcCode, Metrics, MetricsConfig, RpcLabels, RpcMethod};
//!
//! let metrics = Metrics::new(MetricsConfig::default());
//! let call = metrics.rpc_server().start();
//! metrics.rpc_server().record(
//!     RpcLabels { method: RpcMethod::intern("helloworld.Greeter/SayHello"), code: GrpcCode::Unavailable, error: None },
//!     Duration::from_millis(3),
//!     None,
//! );
//! drop(call);
//! let snap = metrics.rpc_server().snapshot();
//! assert_eq!(snap.len(), 1);
//! ```

use std::fmt;
use std::time::Duration;

use super::encode::{LabelList, WriteLabels};
use super::family::{HistogramFamily, Identity, SeriesSnapshot};
use super::http::{Gauges, InFlight};
use super::labels::{ErrorType, Exemplar, GrpcCode, RpcMethod};

/// Labels of one gRPC call (server or client side). `rpc_system_name="grpc"` is added on output.
///
/// With `error: None`, a failing code sets `error_type` to the code's name: on the server the
/// codes semantic conventions call server errors (`UNKNOWN`, `DEADLINE_EXCEEDED`,
/// `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`), on the client every code but `OK`.
/// A call whose future was dropped is recorded with `code: GrpcCode::Cancelled` and
/// `error: Some(ErrorType::Cancelled)`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct RpcLabels {
    /// `rpc_method`: `pkg.Service/Method`, or `_OTHER`.
    pub method: RpcMethod,
    /// `rpc_response_status_code`, by name.
    pub code: GrpcCode,
    /// `error_type`, only on failure.
    pub error: Option<ErrorType>,
}

/// The labels of a server call (same type as the client's).
pub type RpcServerLabels = RpcLabels;
/// The labels of a client call (same type as the server's).
pub type RpcClientLabels = RpcLabels;

impl RpcLabels {
    /// The label set's identity for the family's per-thread cache: the code and the error in
    /// one word, the method's interned record by address in the other. Equal identities mean
    /// equal label sets; `None` for a `Named` error.
    #[inline]
    fn identity(&self) -> Option<Identity> {
        let small = self.code as u64 | ErrorType::packed(self.error)? << 8;
        Some([small, self.method.address()])
    }
}

impl WriteLabels for RpcLabels {
    fn write_labels(&self, l: &mut LabelList) {
        l.push("rpc_system_name", "grpc");
        l.push("rpc_method", self.method.as_str());
        l.push("rpc_response_status_code", self.code.as_str());
        if let Some(e) = self.error {
            l.push_display("error_type", &e);
        }
    }
}

/// The instruments of one side (server or client) of gRPC.
pub struct RpcMetrics {
    pub(crate) duration: HistogramFamily<RpcLabels>,
    // One gauge (index 0) of the group.
    pub(crate) active: Gauges,
    server: bool,
}

impl RpcMetrics {
    pub(crate) fn new(limit: usize, server: bool) -> Self {
        RpcMetrics {
            duration: HistogramFamily::new(limit),
            active: Gauges::new(),
            server,
        }
    }

    /// Raises the active-calls gauge; the returned guard lowers it.
    #[inline]
    pub fn start(&self) -> InFlight<'_> {
        InFlight::new(&self.active, 0)
    }

    /// Records one finished (or failed, or cancelled) call.
    #[inline]
    pub fn record(&self, labels: RpcLabels, elapsed: Duration, exemplar: Option<Exemplar>) {
        // The identity of the label set as given keys the per-thread cache; only a miss
        // normalizes (a function of the label set and the side).
        self.duration.observe_ns_cached(
            labels.identity(),
            || self.normalized(labels),
            super::family::duration_ns(elapsed),
            exemplar,
        );
    }

    fn normalized(&self, mut labels: RpcLabels) -> RpcLabels {
        if labels.error.is_none() {
            let failed = if self.server {
                labels.code.is_server_error()
            } else {
                labels.code != GrpcCode::Ok
            };
            if failed {
                labels.error = Some(ErrorType::Grpc(labels.code));
            }
        }
        labels
    }

    /// Calls in flight.
    pub fn active(&self) -> i64 {
        self.active.value(0)
    }

    /// Every series of the duration histogram.
    pub fn snapshot(&self) -> Vec<SeriesSnapshot<RpcLabels>> {
        self.duration.snapshot()
    }

    /// Label sets held by the duration histogram.
    pub fn series_count(&self) -> usize {
        self.duration.len()
    }
}

impl fmt::Debug for RpcMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcMetrics")
            .field("server", &self.server)
            .field("series", &self.series_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Series;

    fn error_for(server: bool, code: GrpcCode) -> Option<ErrorType> {
        let m = RpcMetrics::new(10, server);
        m.record(
            RpcLabels {
                method: RpcMethod::OTHER,
                code,
                error: None,
            },
            Duration::from_millis(1),
            None,
        );
        match m.snapshot()[0].series {
            Series::Labels(l) => l.error,
            Series::Overflow => unreachable!(),
        }
    }

    /// Label sets recorded over and over in a mixed order, through the per-thread cache:
    /// each one's observations land in its own series, normalized as on the uncached path
    /// (the second observation of a label set is a cache hit).
    #[test]
    fn each_label_set_keeps_its_own_series_through_the_cache() {
        let m = RpcMetrics::new(100, true);
        let methods = [
            RpcMethod::intern("cache.Test/One"),
            RpcMethod::intern("cache.Test/Two"),
        ];
        let errors = [
            None,
            Some(ErrorType::Cancelled),
            Some(ErrorType::Named("io")),
        ];
        let codes = [GrpcCode::Ok, GrpcCode::Internal, GrpcCode::Cancelled];
        let mut sets = Vec::new();
        for method in methods {
            for code in codes {
                for error in errors {
                    sets.push(RpcLabels {
                        method,
                        code,
                        error,
                    });
                }
            }
        }
        for round in 0..3 {
            for (i, labels) in sets.iter().enumerate() {
                // Label set i is recorded i % 3 + 1 times per round.
                for _ in 0..=(i + round) % 3 {
                    m.record(*labels, Duration::from_millis(1), None);
                }
            }
        }
        let snap = m.snapshot();
        for (i, labels) in sets.iter().enumerate() {
            let expected: u64 = (0..3).map(|round| ((i + round) % 3 + 1) as u64).sum();
            let normalized = m.normalized(*labels);
            let got = snap
                .iter()
                .find(|s| s.series == Series::Labels(normalized))
                .map_or(0, |s| s.histogram.count);
            assert_eq!(got, expected, "{labels:?}");
        }
        // No two of these sets normalize alike, so the series hold every observation.
        assert_eq!(snap.len(), sets.len());
        let total: u64 = snap.iter().map(|s| s.histogram.count).sum();
        assert_eq!(total, sets.len() as u64 * 6);
    }

    #[test]
    fn grpc_error_type_by_side() {
        assert_eq!(error_for(true, GrpcCode::Ok), None);
        assert_eq!(error_for(true, GrpcCode::NotFound), None);
        assert_eq!(
            error_for(true, GrpcCode::Internal),
            Some(ErrorType::Grpc(GrpcCode::Internal))
        );
        assert_eq!(
            error_for(false, GrpcCode::NotFound),
            Some(ErrorType::Grpc(GrpcCode::NotFound))
        );
        assert_eq!(GrpcCode::from_bytes(b"14"), GrpcCode::Unavailable);
        assert_eq!(GrpcCode::from_bytes(b"x"), GrpcCode::Unknown);
        assert_eq!(GrpcCode::from_bytes(b"999"), GrpcCode::Unknown);
    }
}
