//! `OTEL_BLRP_*`: the batch log record processor limits of OTLP log export, read, validated
//! and defaulted like `OTEL_BSP_*` and independently of them.

use std::collections::HashMap;
use std::time::Duration;

use observe_core::config::{BatchConfig, Config, ConfigError};

fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::default().with_env_from(move |k| map.get(k).cloned())
}

fn err(vars: &[(&str, &str)]) -> String {
    with(vars).expect_err("must be refused").to_string()
}

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
    for var in ["OTEL_BLRP_SCHEDULE_DELAY", "OTEL_BLRP_EXPORT_TIMEOUT"] {
        for bad in ["10s", "-1", "1.5"] {
            assert_eq!(
                err(&[(var, bad)]),
                format!("{var}={bad:?}: not a whole number of milliseconds")
            );
        }
    }
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
