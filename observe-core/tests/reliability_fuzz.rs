//! Hostile input to the parsers propagation_fuzz.rs does not cover: `OTEL_*` / `OBSERVE_*`
//! values through `Config::with_env_from`, the `/metrics` `Accept` negotiation, gRPC method
//! interning, and the trace headers observe writes back out (client layer, `traceresponse`)
//! when the incoming ones are hostile. Case counts are high; the whole binary runs in well
//! under a minute in a debug build.

use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings over `alphabet` (cheap to generate in debug builds, and close to the grammars).
fn text(alphabet: &'static [char], max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(alphabet), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

mod env {
    use super::*;
    use observe_core::config::{Config, ConfigError};

    /// Every variable `with_env_from` reads.
    const VARS: &[&str] = &[
        "OTEL_SDK_DISABLED",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_SERVICE_NAME",
        "OTEL_PROPAGATORS",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_TRACES_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
        "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_BSP_EXPORT_TIMEOUT",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_BLRP_SCHEDULE_DELAY",
        "OTEL_BLRP_EXPORT_TIMEOUT",
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "OBSERVE_LOG",
        "RUST_LOG",
        "OBSERVE_LOG_FORMAT",
        "OBSERVE_METRICS_MAX_SERIES",
        "OBSERVE_STATUS_PAGE",
    ];

    const CHARS: &[char] = &[
        '0', '1', '9', '.', '-', '+', 'e', 'E', 'x', 'a', 'z', 'T', 'r', 'u', ' ', '\t', '\n',
        '\r', '\0', '\u{7f}', '\u{202e}', 'é', '=', ',', ';', '%', '2', 'F', '/', ':', '[', ']',
        '{', '}', '"', '\\', '*', '_', '@', '?', '#',
    ];

    /// A value: sometimes a near-valid one for the variable's grammar, mostly hostile text.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            text(CHARS, 40),
            any::<String>(),
            (any::<u64>(), any::<bool>()).prop_map(|(n, neg)| if neg {
                format!("-{n}")
            } else {
                n.to_string()
            }),
            any::<f64>().prop_map(|f| f.to_string()),
            text(CHARS, 12).prop_map(|s| format!("http://{s}")),
            (text(CHARS, 8), text(CHARS, 8)).prop_map(|(k, v)| format!("{k}={v},{v}={k}")),
            proptest::sample::select(
                &[
                    "true",
                    "false",
                    "otlp",
                    "console",
                    "none",
                    "grpc",
                    "http/protobuf",
                    "gzip",
                    "json",
                    "tracecontext,baggage",
                    "parentbased_traceidratio",
                    "info,h2=off",
                    "99999999999999999999",
                    "NaN",
                    "inf",
                    "1e400",
                ][..]
            )
            .prop_map(String::from),
        ]
    }

    /// Up to four variables set at once.
    fn vars() -> impl Strategy<Value = Vec<(&'static str, String)>> {
        proptest::collection::vec((proptest::sample::select(VARS), value()), 1..4)
    }

    fn apply(vars: &[(&'static str, String)]) -> Result<Config, ConfigError> {
        let vars = vars.to_vec();
        Config::default().with_env_from(move |name| {
            vars.iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
    }

    /// Found by the property below: tracing-subscriber's filter parser panicked on this.
    #[test]
    fn non_ascii_log_filters_are_refused_not_panicked_on() {
        for var in ["OBSERVE_LOG", "RUST_LOG"] {
            let e = apply(&[(var, " 0[\u{202e}]".to_string())]).unwrap_err();
            assert!(matches!(e, ConfigError::InvalidLogFilter { variable, .. } if variable == var));
            assert!(e.to_string().starts_with(var), "{e}");
        }
        assert!(Config::default()
            .log_filter("info,é=debug")
            .validate()
            .is_err());
    }

    proptest! {
        #![proptest_config(config(10_000))]

        /// Never a panic; every refusal names a variable that was set (or, for the batch
        /// check, the two batch variables), on one line; header lists are never echoed.
        #[test]
        fn every_error_names_the_variable(vars in vars()) {
            let Err(e) = apply(&vars) else { return Ok(()) };
            let msg = e.to_string();
            prop_assert!(!msg.contains('\n') && !msg.contains('\r'), "one line: {msg:?}");
            let named = vars.iter().any(|(k, _)| msg.contains(k));
            prop_assert!(named, "{msg:?} names none of {vars:?}");
            match &e {
                ConfigError::Invalid { variable, .. }
                | ConfigError::InvalidHeaders { variable, .. }
                | ConfigError::InvalidLogFilter { variable, .. } => {
                    prop_assert!(vars.iter().any(|(k, _)| k == variable), "{e:?} for {vars:?}");
                }
                ConfigError::BatchLargerThanQueue { .. } => {
                    prop_assert!(vars.iter().any(|(k, _)| k.starts_with("OTEL_BSP_MAX_")));
                }
                ConfigError::LogBatchLargerThanQueue { .. } => {
                    prop_assert!(vars.iter().any(|(k, _)| k.starts_with("OTEL_BLRP_MAX_")));
                }
                other => prop_assert!(false, "unexpected error kind {other:?}"),
            }
            if let ConfigError::InvalidHeaders { variable, .. } = &e {
                let (_, value) = vars.iter().rev().find(|(k, _)| k == variable).unwrap();
                // A header value may be a credential: it never reaches the message.
                if value.trim().len() >= 6 {
                    prop_assert!(!msg.contains(value.trim()), "{msg:?}");
                }
            }
        }

        /// A secret planted in an otherwise valid header list never appears in any error,
        /// whatever else is wrong with the environment.
        #[test]
        fn otlp_header_values_never_appear_in_errors(
            junk in text(CHARS, 12),
            other in (proptest::sample::select(VARS), value()),
        ) {
            let secret = "Bearer s3cr3t-token-XYZ";
            let vars = vec![
                ("OTEL_EXPORTER_OTLP_HEADERS", format!("authorization={secret},{junk}")),
                other,
            ];
            if let Err(e) = apply(&vars) {
                prop_assert!(!e.to_string().contains("s3cr3t"), "{e}");
                prop_assert!(!format!("{e:?}").contains("s3cr3t"), "{e:?}");
            }
        }
    }
}

mod accept {
    use super::*;
    use http::HeaderValue;
    use observe_core::metrics::Format;

    const MEDIA: &[&str] = &[
        "application/openmetrics-text",
        "APPLICATION/OpenMetrics-Text",
        "text/plain",
        "text/*",
        "*/*",
        "application/json",
        "text/html",
        "",
    ];
    const Q: &[&str] = &[
        "",
        ";q=1",
        ";q=0",
        ";q=0.5",
        ";q=0.1",
        "; q=0.9",
        ";q=1.5",
        ";q=-1",
        ";q=abc",
        ";q=",
        ";version=1.0.0",
        ";version=0.0.4;q=0.2",
        ";Q=0.3",
    ];

    /// The negotiation rule restated: the highest valid q per kind, OpenMetrics on a tie.
    fn model(entries: &[(&str, &str)]) -> Format {
        let q = |params: &str| -> f32 {
            for p in params.split(';').skip(1) {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        return v
                            .trim()
                            .parse::<f32>()
                            .ok()
                            .filter(|q| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0);
                    }
                }
            }
            1.0
        };
        let (mut om, mut txt) = (0.0f32, 0.0f32);
        for (media, params) in entries {
            let m = media.to_ascii_lowercase();
            if m == "application/openmetrics-text" {
                om = om.max(q(params));
            } else if m == "text/plain" || m == "*/*" || m == "text/*" {
                txt = txt.max(q(params));
            }
        }
        if om > 0.0 && om >= txt {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    proptest! {
        #![proptest_config(config(20_000))]

        #[test]
        fn arbitrary_bytes_never_panic_and_only_openmetrics_asks_for_it(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let Ok(value) = HeaderValue::from_bytes(&bytes) else { return Ok(()) };
            let format = Format::negotiate(Some(&value));
            if format == Format::OpenMetrics {
                let lower = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
                prop_assert!(lower.contains("application/openmetrics-text"), "{bytes:?}");
            }
        }

        #[test]
        fn near_valid_lists_follow_the_quality_rules(
            entries in proptest::collection::vec(
                (proptest::sample::select(MEDIA), proptest::sample::select(Q), any::<bool>()),
                0..6,
            ),
        ) {
            let header = entries
                .iter()
                .map(|(m, q, ows)| if *ows { format!(" {m}{q} ") } else { format!("{m}{q}") })
                .collect::<Vec<_>>()
                .join(",");
            let value = HeaderValue::from_str(&header).unwrap();
            let pairs: Vec<(&str, &str)> = entries.iter().map(|(m, q, _)| (*m, *q)).collect();
            prop_assert_eq!(Format::negotiate(Some(&value)), model(&pairs), "{}", header);
        }
    }
}

mod rpc_methods {
    use super::*;
    use observe_core::metrics::{RpcMethod, MAX_INTERNED, MAX_INTERNED_LEN};

    const PATH_CHARS: &[char] = &['/', 'a', 'B', '.', '_', '0', ' ', '%', 'é', '\0', '\n', '{'];

    /// Interns more distinct well-formed methods than the bound, once, before any other
    /// test of this module interns anything (both tests call it first).
    fn flood() -> RpcMethod {
        static FIRST: std::sync::OnceLock<RpcMethod> = std::sync::OnceLock::new();
        *FIRST.get_or_init(|| {
            let first = RpcMethod::from_path("/bound.Svc/First");
            for i in 0..(MAX_INTERNED + 2_000) {
                let _ = RpcMethod::from_path(&format!("/flood.Svc/M{i}"));
            }
            first
        })
    }

    proptest! {
        #![proptest_config(config(20_000))]

        /// Any path gives `_OTHER` or exactly `service/method` from it, never panics, and
        /// the interner never passes its bound.
        #[test]
        fn any_path_interns_to_itself_or_other(path in prop_oneof![
            text(PATH_CHARS, 24),
            any::<String>(),
            (text(PATH_CHARS, 8), 0usize..1200).prop_map(|(s, n)| format!("/svc.S/{}{s}", "m".repeat(n))),
        ]) {
            flood();
            let m = RpcMethod::from_path(&path);
            let stripped = path.strip_prefix('/').unwrap_or(&path);
            prop_assert!(m == RpcMethod::OTHER || m.as_str() == stripped, "{path:?} -> {m:?}");
            if stripped.len() > MAX_INTERNED_LEN {
                prop_assert_eq!(m, RpcMethod::OTHER);
            }
            prop_assert!(RpcMethod::interned_count() <= MAX_INTERNED);
        }
    }

    /// More distinct well-formed methods than the bound: past it, every new one is `_OTHER`,
    /// and the ones interned before keep resolving to themselves.
    #[test]
    fn past_the_bound_new_methods_are_other() {
        let first = flood();
        assert_eq!(RpcMethod::interned_count(), MAX_INTERNED);
        assert_eq!(RpcMethod::from_path("/late.Svc/New"), RpcMethod::OTHER);
        assert_eq!(RpcMethod::from_path("/bound.Svc/First"), first);
        assert_eq!(first.as_str(), "bound.Svc/First");
    }
}

mod written_headers {
    use super::*;
    use std::convert::Infallible;

    use http::{HeaderMap, HeaderValue, Request, Response};
    use observe_core::http::{ClientLayer, ResponseHeader, ServerLayer};
    use observe_core::metrics::Metrics;
    use observe_core::propagation::{Baggage, TraceParent, TraceState};
    use observe_core::trace::Sampler;
    use tower::{service_fn, Layer, ServiceExt};

    const TP_CHARS: &[char] = &['0', '1', 'f', 'a', 'F', '-', 'x', ' ', '\t', 'é', '0', '0'];
    const TS_CHARS: &[char] = &[
        'a', 'z', '0', '@', '=', ',', ' ', '\t', '*', '/', '_', 'A', '~',
    ];
    const BG_CHARS: &[char] = &[
        'a', 'Z', '0', '=', ';', ',', ' ', '%', '2', 'F', '"', '\\', 'é',
    ];

    /// One incoming header: grammar-near text, a valid value, or arbitrary bytes (those
    /// `HeaderValue` accepts: anything but controls, so obs-text and lone high bytes too).
    fn hostile(alphabet: &'static [char], valid: &'static str) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            text(alphabet, 80).prop_map(String::into_bytes),
            Just(valid.as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 0..120),
            (
                text(alphabet, 20),
                proptest::collection::vec(128u8..=255, 1..6)
            )
                .prop_map(|(s, high)| [valid.as_bytes(), s.as_bytes(), &high].concat()),
        ]
    }

    fn lines(
        alphabet: &'static [char],
        valid: &'static str,
    ) -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(hostile(alphabet, valid), 0..3)
    }

    fn printable(v: &HeaderValue) -> bool {
        v.as_bytes().iter().all(|b| (0x20..0x7f).contains(b))
    }

    fn metrics() -> &'static Metrics {
        static M: std::sync::OnceLock<&'static Metrics> = std::sync::OnceLock::new();
        M.get_or_init(|| Metrics::new(Default::default()).leak())
    }

    proptest! {
        #![proptest_config(config(3_000))]

        /// Whatever arrives, what observe sends onward (client layer) and answers with
        /// (`traceresponse`) is well-formed, printable ASCII: no CR/LF, no raw input.
        #[test]
        fn outgoing_trace_headers_are_always_well_formed(
            tp in lines(TP_CHARS, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ts in lines(TS_CHARS, "vendor=abc,other@sys=1"),
            bg in lines(BG_CHARS, "user.tier=gold;p=1,x=%20y"),
            sampled in any::<bool>(),
        ) {
            let client = ClientLayer::new().metrics(metrics()).layer(service_fn(
                |r: Request<()>| async move { Ok::<_, Infallible>(Response::new(r.headers().clone())) },
            ));
            let server = ServerLayer::new()
                .metrics(metrics())
                .sampler(if sampled { Sampler::AlwaysOn } else { Sampler::AlwaysOff })
                .response_header(ResponseHeader::TraceResponse)
                .layer(service_fn(move |_r: Request<()>| {
                    let client = client.clone();
                    async move {
                        let sent = client
                            .oneshot(Request::builder().uri("http://down.stream/x").body(()).unwrap())
                            .await
                            .unwrap()
                            .into_body();
                        Ok::<_, Infallible>(Response::new(sent))
                    }
                }));
            let mut incoming = Request::builder().uri("/in");
            for (name, values) in [("traceparent", &tp), ("tracestate", &ts), ("baggage", &bg)] {
                for v in values {
                    if let Ok(v) = HeaderValue::from_bytes(v) {
                        incoming = incoming.header(name, v);
                    }
                }
            }
            let incoming = incoming.body(()).unwrap();
            let received: HeaderMap = incoming.headers().clone();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let response = rt.block_on(server.oneshot(incoming)).unwrap();
            let sent = response.body();

            let tp_out = sent.get_all("traceparent").iter().collect::<Vec<_>>();
            prop_assert_eq!(tp_out.len(), 1);
            prop_assert!(printable(tp_out[0]));
            let parsed = TraceParent::parse(tp_out[0].as_bytes());
            prop_assert!(parsed.is_ok(), "{:?}", tp_out[0]);
            prop_assert_eq!(tp_out[0].len(), 55);
            prop_assert!(tp_out[0].as_bytes().starts_with(b"00-"));

            let ts_out = sent.get_all("tracestate").iter().collect::<Vec<_>>();
            prop_assert!(ts_out.len() <= 1);
            for v in ts_out {
                prop_assert!(printable(v), "{v:?}");
                let s = v.to_str().unwrap();
                prop_assert!(TraceState::parse(s).is_ok(), "{s:?}");
                prop_assert!(s.len() <= 512, "{}", s.len());
                // Forwarded only when something valid was received.
                prop_assert!(received.contains_key("tracestate"));
            }
            let bg_out = sent.get_all("baggage").iter().collect::<Vec<_>>();
            prop_assert!(bg_out.len() <= 1);
            for v in bg_out {
                prop_assert!(printable(v), "{v:?}");
                let s = v.to_str().unwrap();
                let b = Baggage::parse(s);
                prop_assert!(b.is_ok(), "{s:?}");
                prop_assert!(s.len() <= 8192);
                prop_assert!(received.contains_key("baggage"));
            }

            let tr = response.headers().get_all("traceresponse").iter().collect::<Vec<_>>();
            prop_assert_eq!(tr.len(), 1);
            prop_assert!(printable(tr[0]));
            prop_assert!(TraceParent::parse(tr[0].as_bytes()).is_ok(), "{:?}", tr[0]);
            // The answer names the same trace the request was continued in.
            prop_assert_eq!(&tr[0].as_bytes()[3..35], &tp_out[0].as_bytes()[3..35]);
        }
    }
}
