//! Every environment variable `Config` reads, and every error it can return.

use std::collections::HashMap;
use std::time::Duration;

use observe_core::config::{
    Config, ConfigError, ExporterKind, Headers, LogFormat, OtlpCompression, OtlpProtocol,
    Propagator,
};
use observe_core::trace::Sampler;

fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    with_base(Config::default(), vars)
}

fn with_base(base: Config, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    base.with_env_from(move |k| map.get(k).cloned())
}

fn err(vars: &[(&str, &str)]) -> String {
    with(vars).expect_err("must be refused").to_string()
}

/// Every `bad` value of every variable in `vars` is refused with `"{var}={bad:?}: {reason}"`.
fn assert_refused(vars: &[&str], bads: &[&str], reason: &str) {
    for var in vars {
        for bad in bads {
            assert_eq!(err(&[(var, bad)]), format!("{var}={bad:?}: {reason}"));
        }
    }
}

#[test]
fn defaults_without_environment() {
    let c = with(&[]).unwrap();
    assert!(!c.sdk_disabled);
    assert_eq!(c.service_name, None);
    assert_eq!(c.effective_service_name(), "unknown_service");
    assert_eq!(c.sampler, Sampler::ParentBasedAlwaysOn);
    assert_eq!(
        c.propagators,
        [Propagator::TraceContext, Propagator::Baggage]
    );
    assert_eq!(c.traces_exporter, ExporterKind::Otlp);
    assert_eq!(c.logs_exporter, ExporterKind::None);
    assert_eq!(c.traces_otlp(), None, "no endpoint: nothing exported");
    assert_eq!(c.logs_otlp(), None);
    assert_eq!(c.log_filter, "info");
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.metrics_max_series, 2000);
    assert!(!c.status_page);
    assert!(c.redact_fields.iter().any(|f| f == "authorization"));
    assert_eq!(c.batch.schedule_delay, Duration::from_millis(5000));
    assert_eq!(c.batch.export_timeout, Duration::from_millis(30000));
}

#[test]
fn empty_values_count_as_unset() {
    let c = with(&[("OTEL_SERVICE_NAME", ""), ("OTEL_TRACES_SAMPLER", " ")]).unwrap();
    assert_eq!(c.service_name, None);
    assert_eq!(c.sampler, Sampler::ParentBasedAlwaysOn);
}

#[test]
fn sdk_disabled() {
    assert!(with(&[("OTEL_SDK_DISABLED", "TRUE")]).unwrap().sdk_disabled);
    assert!(
        !with(&[("OTEL_SDK_DISABLED", "false")])
            .unwrap()
            .sdk_disabled
    );
    let c = with(&[
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
    ])
    .unwrap();
    assert_eq!(c.traces_otlp(), None, "disabled SDK exports nothing");
    assert_eq!(
        err(&[("OTEL_SDK_DISABLED", "yes")]),
        r#"OTEL_SDK_DISABLED="yes": not a boolean (true or false)"#
    );
}

#[test]
fn service_name_and_resource_attributes() {
    let c = with_base(
        Config::default()
            .service_name("code")
            .resource_attribute("a", "1"),
        &[
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs, service.version=2.0,deployment.environment.name=prod,\
                 team=pay%20ments,key%3D=v%2Cw",
            ),
            ("OTEL_SERVICE_NAME", "from-env"),
        ],
    )
    .unwrap();
    // OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES.
    assert_eq!(c.service_name.as_deref(), Some("from-env"));
    assert_eq!(c.service_version.as_deref(), Some("2.0"));
    assert_eq!(c.deployment_environment.as_deref(), Some("prod"));
    assert_eq!(
        c.resource_attributes,
        [
            ("a".to_string(), "1".to_string()),
            ("team".to_string(), "pay ments".to_string()),
            ("key=".to_string(), "v,w".to_string()),
        ]
    );
    let only_attrs = with(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=svc")]).unwrap();
    assert_eq!(only_attrs.service_name.as_deref(), Some("svc"));
    for bad in ["novalue", "=x", "k=%ff", "a=1,,b"] {
        if bad == "a=1,,b" {
            // Empty entries are skipped, but `b` has no `=`.
            assert!(with(&[("OTEL_RESOURCE_ATTRIBUTES", bad)]).is_err());
            continue;
        }
        assert_eq!(
            err(&[("OTEL_RESOURCE_ATTRIBUTES", bad)]),
            format!(
                "OTEL_RESOURCE_ATTRIBUTES={bad:?}: comma-separated percent-encoded key=value pairs"
            )
        );
    }
}

#[test]
fn propagators() {
    let c = with(&[("OTEL_PROPAGATORS", "baggage, tracecontext,baggage")]).unwrap();
    assert_eq!(
        c.propagators,
        [Propagator::Baggage, Propagator::TraceContext]
    );
    assert!(with(&[("OTEL_PROPAGATORS", "none")])
        .unwrap()
        .propagators
        .is_empty());
    for bad in ["b3", "tracecontext,jaeger", "none,tracecontext"] {
        assert_eq!(
            err(&[("OTEL_PROPAGATORS", bad)]),
            format!(
                "OTEL_PROPAGATORS={bad:?}: not a list of supported propagators (tracecontext, baggage) or none"
            )
        );
    }
}

#[test]
fn samplers_and_argument() {
    let cases = [
        ("always_on", None, Sampler::AlwaysOn),
        ("always_off", None, Sampler::AlwaysOff),
        ("traceidratio", Some("0.5"), Sampler::TraceIdRatio(0.5)),
        ("traceidratio", None, Sampler::TraceIdRatio(1.0)),
        ("parentbased_always_on", None, Sampler::ParentBasedAlwaysOn),
        (
            "parentbased_always_off",
            None,
            Sampler::ParentBasedAlwaysOff,
        ),
        (
            "parentbased_traceidratio",
            Some("0"),
            Sampler::ParentBasedTraceIdRatio(0.0),
        ),
    ];
    for (name, arg, expected) in cases {
        let mut vars = vec![("OTEL_TRACES_SAMPLER", name)];
        if let Some(a) = arg {
            vars.push(("OTEL_TRACES_SAMPLER_ARG", a));
        }
        assert_eq!(with(&vars).unwrap().sampler, expected, "{name}");
    }
    // The argument alone retunes a ratio sampler set in code.
    let c = with_base(
        Config::default().sampler(Sampler::ParentBasedTraceIdRatio(0.1)),
        &[("OTEL_TRACES_SAMPLER_ARG", "0.75")],
    )
    .unwrap();
    assert_eq!(c.sampler, Sampler::ParentBasedTraceIdRatio(0.75));
    for bad in ["abc", "1.5", "-0.1", "NaN"] {
        assert_eq!(
            err(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", bad)
            ]),
            format!("OTEL_TRACES_SAMPLER_ARG={bad:?}: not a number in 0..=1")
        );
    }
    assert_eq!(
        err(&[("OTEL_TRACES_SAMPLER", "jaeger_remote")]),
        "OTEL_TRACES_SAMPLER=\"jaeger_remote\": not a supported sampler (always_on, always_off, \
         traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)"
    );
}

#[test]
fn exporters() {
    let c = with(&[
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
    ])
    .unwrap();
    assert_eq!(c.traces_exporter, ExporterKind::None);
    assert_eq!(c.logs_exporter, ExporterKind::Otlp);
    let c = with(&[
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
    ])
    .unwrap();
    assert_eq!(c.traces_otlp(), None, "exporter none wins over an endpoint");
    assert_eq!(
        err(&[("OTEL_TRACES_EXPORTER", "zipkin")]),
        r#"OTEL_TRACES_EXPORTER="zipkin": not a supported exporter (otlp, console, none)"#
    );
    assert_eq!(
        err(&[("OTEL_LOGS_EXPORTER", "jaeger")]),
        r#"OTEL_LOGS_EXPORTER="jaeger": not a supported exporter (otlp, console, none)"#
    );
    // console: traces to stdout with no endpoint; logs stdout only (never OTLP).
    let c = with(&[
        ("OTEL_TRACES_EXPORTER", " console "),
        ("OTEL_LOGS_EXPORTER", "console"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
    ])
    .unwrap();
    assert_eq!(c.traces_exporter, ExporterKind::Console);
    assert_eq!(c.logs_exporter, ExporterKind::Console);
    assert_eq!(c.traces_otlp(), None, "console is not OTLP");
    assert_eq!(c.logs_otlp(), None, "console logs: stdout only");
}

#[test]
fn generic_otlp_settings_resolve_per_signal() {
    let c = with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=s%3Dkr1t, x-tenant = a b",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
    ])
    .unwrap();
    let t = c.traces_otlp().unwrap();
    assert_eq!(t.endpoint, "http://collector:4318/v1/traces");
    assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(
        t.headers,
        Headers(vec![
            ("api-key".into(), "s=kr1t".into()),
            ("x-tenant".into(), "a b".into())
        ])
    );
    assert_eq!(t.timeout, Duration::from_millis(2500));
    assert_eq!(t.compression, OtlpCompression::Gzip);
    assert_eq!(
        c.logs_otlp().unwrap().endpoint,
        "http://collector:4318/v1/logs"
    );
    // gRPC uses the endpoint as given.
    let g = with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]).unwrap();
    assert_eq!(g.traces_otlp().unwrap().endpoint, "http://collector:4317");
    assert_eq!(g.traces_otlp().unwrap().protocol, OtlpProtocol::Grpc);
    // Header values never appear in Debug output.
    assert!(!format!("{c:?}").contains("kr1t"));
}

#[test]
fn per_signal_settings_override_and_are_used_as_is() {
    let c = with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces:4318/custom/path",
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=2"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "100"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ("OTEL_LOGS_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:4317"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "c=3"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "200"),
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "none"),
    ])
    .unwrap();
    let t = c.traces_otlp().unwrap();
    assert_eq!(t.endpoint, "http://traces:4318/custom/path");
    assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
    assert_eq!(t.headers, Headers(vec![("b".into(), "2".into())]));
    assert_eq!(t.timeout, Duration::from_millis(100));
    assert_eq!(t.compression, OtlpCompression::Gzip);
    let l = c.logs_otlp().unwrap();
    assert_eq!(l.endpoint, "http://logs:4317");
    assert_eq!(l.protocol, OtlpProtocol::Grpc);
    assert_eq!(l.headers, Headers(vec![("c".into(), "3".into())]));
    assert_eq!(l.timeout, Duration::from_millis(200));
    assert_eq!(l.compression, OtlpCompression::None);
    // A per-signal endpoint alone is enough to export.
    let only = with(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317")]).unwrap();
    assert_eq!(only.traces_otlp().unwrap().endpoint, "http://t:4317");
}

#[test]
fn otlp_errors_name_the_variable() {
    assert_refused(
        &[
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        ],
        &["collector:4317", "ftp://x", "http://"],
        "not an http:// or https:// URL",
    );
    assert_refused(
        &[
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        ],
        &["http/json"],
        "not a supported protocol (grpc, http/protobuf)",
    );
    assert_refused(
        &[
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
            "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_BSP_EXPORT_TIMEOUT",
        ],
        &["10s"],
        "not a whole number of milliseconds",
    );
    assert_refused(
        &[
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
        ],
        &["zstd"],
        "not a supported compression (gzip, none)",
    );
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    ] {
        let msg = err(&[(var, "a=1,secret-without-equals")]);
        assert_eq!(
            msg,
            format!("{var}: entry 2 is not a percent-encoded key=value pair (value not shown)")
        );
        assert!(!msg.contains("secret"), "header values are never shown");
        // Values that cannot be sent as a header are refused too (here a newline).
        assert!(matches!(
            with(&[(var, "k=line%0Abreak")]),
            Err(ConfigError::InvalidHeaders { entry: 1, .. })
        ));
    }
}

#[test]
fn batch_processor_limits() {
    let c = with(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "1000"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100"),
    ])
    .unwrap();
    assert_eq!(c.batch.schedule_delay, Duration::from_millis(250));
    assert_eq!(c.batch.export_timeout, Duration::from_millis(1000));
    assert_eq!(
        (c.batch.max_queue_size, c.batch.max_export_batch_size),
        (100, 100)
    );
    assert_refused(
        &["OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"],
        &["0", "-1", "many"],
        "not a positive integer",
    );
    let e = with(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "101"),
    ])
    .unwrap_err();
    assert_eq!(
        e,
        ConfigError::BatchLargerThanQueue {
            batch: 101,
            queue: 100
        }
    );
    assert_eq!(
        e.to_string(),
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=101 exceeds OTEL_BSP_MAX_QUEUE_SIZE=100"
    );
    // The default batch (512) against a small queue from the environment.
    assert!(matches!(
        with(&[("OTEL_BSP_MAX_QUEUE_SIZE", "10")]),
        Err(ConfigError::BatchLargerThanQueue {
            batch: 512,
            queue: 10
        })
    ));
}

#[test]
fn log_filter_and_format() {
    let c = with(&[("RUST_LOG", "warn,my_crate=debug")]).unwrap();
    assert_eq!(c.log_filter, "warn,my_crate=debug");
    let c = with(&[("RUST_LOG", "warn"), ("OBSERVE_LOG", "error")]).unwrap();
    assert_eq!(c.log_filter, "error", "OBSERVE_LOG wins over RUST_LOG");
    for var in ["RUST_LOG", "OBSERVE_LOG"] {
        let e = with(&[(var, "my_crate=loud")]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::InvalidLogFilter { variable, value, .. } if *variable == var && value == "my_crate=loud"),
            "{e:?}"
        );
        assert!(
            e.to_string().starts_with(&format!(
                "{var}=\"my_crate=loud\": not a valid log filter: "
            )),
            "{e}"
        );
    }
    assert_eq!(
        with(&[("OBSERVE_LOG_FORMAT", "pretty")])
            .unwrap()
            .log_format,
        LogFormat::Pretty
    );
    assert_eq!(
        with(&[("OBSERVE_LOG_FORMAT", "JSON")]).unwrap().log_format,
        LogFormat::Json
    );
    assert_eq!(
        err(&[("OBSERVE_LOG_FORMAT", "xml")]),
        r#"OBSERVE_LOG_FORMAT="xml": one of json, pretty"#
    );
}

#[test]
fn observe_metrics_and_status_page() {
    let c = with(&[
        ("OBSERVE_METRICS_MAX_SERIES", "50"),
        ("OBSERVE_STATUS_PAGE", "true"),
    ])
    .unwrap();
    assert_eq!(c.metrics_max_series, 50);
    assert!(c.status_page);
    assert_eq!(
        err(&[("OBSERVE_METRICS_MAX_SERIES", "0")]),
        r#"OBSERVE_METRICS_MAX_SERIES="0": not a positive integer"#
    );
    assert_eq!(
        err(&[("OBSERVE_STATUS_PAGE", "on")]),
        r#"OBSERVE_STATUS_PAGE="on": not a boolean (true or false)"#
    );
    assert!(
        !with(&[]).unwrap().span_events,
        "span events are off by default"
    );
    assert!(
        with(&[("OBSERVE_SPAN_EVENTS", "true")])
            .unwrap()
            .span_events
    );
    assert_eq!(
        err(&[("OBSERVE_SPAN_EVENTS", "yes")]),
        r#"OBSERVE_SPAN_EVENTS="yes": not a boolean (true or false)"#
    );
}

#[test]
fn values_set_in_code_are_validated_too() {
    assert_eq!(
        Config::default()
            .sampler(Sampler::TraceIdRatio(2.0))
            .validate()
            .unwrap_err()
            .to_string(),
        r#"sampler="2": not a number in 0..=1"#
    );
    assert!(matches!(
        Config::default().log_filter("=[").validate(),
        Err(ConfigError::InvalidLogFilter {
            variable: "log_filter",
            ..
        })
    ));
}

#[test]
fn hostile_values_are_refused_not_panicked_on() {
    let huge = "9".repeat(10_000);
    let nul = "a\0b";
    let vars = [
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OBSERVE_METRICS_MAX_SERIES",
    ];
    for var in vars {
        for v in [huge.as_str(), nul, "\u{202e}evil"] {
            assert!(with(&[(var, v)]).is_err(), "{var}={v:?}");
        }
    }
    // The refused value is shown escaped, so control characters cannot forge log lines.
    let msg = err(&[("OTEL_SDK_DISABLED", "x\nINFO fake")]);
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn applying_the_environment_twice_keeps_one_value_per_key() {
    let vars = [("OTEL_RESOURCE_ATTRIBUTES", "team=a,region=eu")];
    let once = with(&vars).unwrap();
    let twice = with_base(once.clone(), &vars).unwrap();
    assert_eq!(twice.resource_attributes, once.resource_attributes);
    assert_eq!(twice.resource_attributes.len(), 2);
}

/// `OTEL_BLRP_*`: the batch log record processor limits of OTLP log export, read, validated
/// and defaulted like `OTEL_BSP_*` and independently of them.
mod log_batch {
    use super::*;
    use observe_core::config::BatchConfig;

    #[test]
    fn defaults_are_the_specifications() {
        let c = with(&[]).unwrap();
        assert_eq!(c.log_batch.schedule_delay, Duration::from_millis(1000));
        assert_eq!(c.log_batch.export_timeout, Duration::from_millis(30000));
        assert_eq!(c.log_batch.max_queue_size, 2048);
        assert_eq!(c.log_batch.max_export_batch_size, 512);
        assert_eq!(c.log_batch, BatchConfig::log_records());
        // The span processor keeps its own (5000 ms) delay.
        assert_eq!(c.batch.schedule_delay, Duration::from_millis(5000));
    }

    #[test]
    fn each_variable_is_read_and_touches_only_the_log_limits() {
        let c = with(&[
            ("OTEL_BLRP_SCHEDULE_DELAY", "250"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", " 1500 "),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "100"),
        ])
        .unwrap();
        assert_eq!(c.log_batch.schedule_delay, Duration::from_millis(250));
        assert_eq!(c.log_batch.export_timeout, Duration::from_millis(1500));
        assert_eq!(
            (
                c.log_batch.max_queue_size,
                c.log_batch.max_export_batch_size
            ),
            (100, 100)
        );
        assert_eq!(c.batch, BatchConfig::default(), "span limits untouched");

        // And the other way round: OTEL_BSP_* leaves the log limits alone.
        let c = with(&[
            ("OTEL_BSP_SCHEDULE_DELAY", "7"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "600"),
        ])
        .unwrap();
        assert_eq!(c.log_batch, BatchConfig::log_records());
        assert_eq!(c.batch.schedule_delay, Duration::from_millis(7));

        // One variable at a time, each on its own field.
        let c = with(&[("OTEL_BLRP_SCHEDULE_DELAY", "0")]).unwrap();
        assert_eq!(c.log_batch.schedule_delay, Duration::ZERO);
        let c = with(&[("OTEL_BLRP_EXPORT_TIMEOUT", "5")]).unwrap();
        assert_eq!(c.log_batch.export_timeout, Duration::from_millis(5));
        let c = with(&[("OTEL_BLRP_MAX_QUEUE_SIZE", "4096")]).unwrap();
        assert_eq!(c.log_batch.max_queue_size, 4096);
        let c = with(&[("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "16")]).unwrap();
        assert_eq!(c.log_batch.max_export_batch_size, 16);
        // Empty counts as unset, as everywhere.
        let c = with(&[("OTEL_BLRP_MAX_QUEUE_SIZE", "  ")]).unwrap();
        assert_eq!(c.log_batch.max_queue_size, 2048);
    }

    #[test]
    fn invalid_values_name_the_variable_and_the_value() {
        assert_refused(
            &["OTEL_BLRP_SCHEDULE_DELAY", "OTEL_BLRP_EXPORT_TIMEOUT"],
            &["10s", "-1", "1.5"],
            "not a whole number of milliseconds",
        );
        for var in [
            "OTEL_BLRP_MAX_QUEUE_SIZE",
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        ] {
            for bad in ["0", "-1", "many", "99999999999999999999999"] {
                let e = with(&[(var, bad)]).unwrap_err();
                assert_eq!(
                    e,
                    ConfigError::Invalid {
                        variable: var,
                        value: bad.to_string(),
                        expected: "not a positive integer",
                    }
                );
                assert_eq!(
                    e.to_string(),
                    format!("{var}={bad:?}: not a positive integer")
                );
            }
        }
    }

    #[test]
    fn batch_larger_than_queue_is_refused_naming_the_log_variables() {
        let e = with(&[
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "101"),
        ])
        .unwrap_err();
        assert_eq!(
            e,
            ConfigError::LogBatchLargerThanQueue {
                batch: 101,
                queue: 100
            }
        );
        assert_eq!(
            e.to_string(),
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=101 exceeds OTEL_BLRP_MAX_QUEUE_SIZE=100"
        );
        // The default batch (512) against a small queue from the environment.
        assert_eq!(
            with(&[("OTEL_BLRP_MAX_QUEUE_SIZE", "10")]).unwrap_err(),
            ConfigError::LogBatchLargerThanQueue {
                batch: 512,
                queue: 10
            }
        );
        // A span queue that small says nothing about logs, and the reverse.
        assert!(matches!(
            with(&[("OTEL_BSP_MAX_QUEUE_SIZE", "10")]),
            Err(ConfigError::BatchLargerThanQueue { .. })
        ));
        assert!(with(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "10"),
        ])
        .is_ok());
    }

    #[test]
    fn limits_set_in_code_are_validated_and_overridden_by_the_environment() {
        let mut limits = BatchConfig::log_records();
        limits.max_export_batch_size = 4096;
        let e = Config::default().log_batch(limits).validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=4096 exceeds OTEL_BLRP_MAX_QUEUE_SIZE=2048"
        );
        let mut zero = BatchConfig::log_records();
        zero.max_queue_size = 0;
        assert_eq!(
            Config::default()
                .log_batch(zero)
                .validate()
                .unwrap_err()
                .to_string(),
            r#"OTEL_BLRP_MAX_QUEUE_SIZE="0": not a positive integer"#
        );

        let mut code = BatchConfig::log_records();
        code.max_queue_size = 50;
        code.max_export_batch_size = 25;
        let c = Config::default()
            .log_batch(code.clone())
            .with_env_from(|k| (k == "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE").then(|| "50".into()))
            .unwrap();
        assert_eq!(c.log_batch.max_queue_size, 50, "kept from code");
        assert_eq!(
            c.log_batch.max_export_batch_size, 50,
            "from the environment"
        );
    }
}
