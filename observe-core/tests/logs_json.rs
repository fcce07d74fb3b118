//! The JSON layer under a real subscriber: captured output parsed back with serde_json.

// In a module so that `cargo test -p observe-core logs` selects these tests by name.
mod logs {
    use std::fmt;
    use std::io;
    use std::sync::{Arc, Mutex};

    use observe_core::context::{RequestContext, SpanId, TraceFlags, TraceId};
    use observe_core::logs::{timestamp, JsonLayer, JsonLayerBuilder, Redactor};
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use serde_json::Value;
    use tracing::{info, info_span};
    use tracing_subscriber::layer::SubscriberExt;

    /// A `MakeWriter` appending to a shared buffer.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).expect("output is UTF-8")
        }
    }

    /// A JSON object's entries in order, duplicates kept: serde_json's `Value` would silently keep
    /// the last of two equal keys, hiding exactly the bug we look for.
    struct Entries(Vec<(String, Value)>);

    impl<'de> Deserialize<'de> for Entries {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Entries;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Entries, A::Error> {
                    let mut v = Vec::new();
                    while let Some(e) = m.next_entry::<String, Value>()? {
                        v.push(e);
                    }
                    Ok(Entries(v))
                }
            }
            d.deserialize_map(V)
        }
    }

    /// Parses every line: each must be exactly one JSON object with unique keys.
    fn lines(out: &Capture) -> Vec<Value> {
        let text = out.text();
        assert!(text.ends_with('\n') || text.is_empty(), "unterminated line");
        text.lines()
            .map(|line| {
                let entries: Entries = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
                let mut keys: Vec<&str> = entries.0.iter().map(|(k, _)| k.as_str()).collect();
                let n = keys.len();
                keys.sort_unstable();
                keys.dedup();
                assert_eq!(keys.len(), n, "duplicate keys in {line}");
                serde_json::from_str(line).unwrap()
            })
            .collect()
    }

    fn run_builder(builder: JsonLayerBuilder, f: impl FnOnce()) -> Vec<Value> {
        let out = Capture::default();
        let w = out.clone();
        let layer = builder.writer(move || w.clone()).build();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        lines(&out)
    }

    fn run(f: impl FnOnce()) -> Vec<Value> {
        run_builder(JsonLayer::builder().service_name("checkout"), f)
    }

    fn cx() -> RequestContext {
        RequestContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::default(), // not sampled: correlation must not depend on sampling
        )
    }

    #[test]
    fn ids_present_inside_request_context_and_absent_outside() {
        let out = run(|| {
            info!("before");
            {
                let _g = cx().enter();
                info!("inside");
            }
            info!("after");
        });
        assert_eq!(out.len(), 3);
        assert!(out[0].get("trace_id").is_none() && out[0].get("span_id").is_none());
        assert_eq!(out[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(out[1]["span_id"], "00f067aa0ba902b7");
        assert!(out[2].get("trace_id").is_none());
    }

    #[test]
    fn standard_keys() {
        let out = run(|| tracing::warn!(target: "my_app::db", "slow query"));
        let l = &out[0];
        assert_eq!(l["level"], "WARN");
        assert_eq!(l["target"], "my_app::db");
        assert_eq!(l["message"], "slow query");
        assert_eq!(l["service.name"], "checkout");
        let ts = l["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 27, "{ts}");
        let b = ts.as_bytes();
        assert!(
            b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[26] == b'Z',
            "{ts}"
        );
        // It is now (same day give or take the test crossing midnight).
        let now = timestamp::format(std::time::SystemTime::now());
        assert_eq!(&b[..4], &now[..4]);
        // No span, no span keys.
        assert!(l.get("span").is_none() && l.get("spans").is_none());
    }

    #[test]
    fn event_without_message_gets_empty_message() {
        let out = run(|| info!(user = 7));
        assert_eq!(out[0]["message"], "");
        assert_eq!(out[0]["user"], 7);
    }

    #[test]
    fn span_name_fields_and_list() {
        let out = run(|| {
            let outer = info_span!("request", method = "GET", route = "/users/{id}");
            let _o = outer.enter();
            let inner = info_span!("db", table = "users", rows = tracing::field::Empty);
            let _i = inner.enter();
            info!("first");
            inner.record("rows", 3);
            info!("second");
            inner.record("rows", 4); // re-recorded: replaced, not duplicated
            info!("third");
        });
        assert_eq!(out[0]["spans"], serde_json::json!(["request", "db"]));
        assert_eq!(
            out[0]["span"],
            serde_json::json!({"name": "db", "table": "users"})
        );
        assert_eq!(out[1]["span"]["rows"], 3);
        assert_eq!(
            out[2]["span"],
            serde_json::json!({"name": "db", "table": "users", "rows": 4})
        );
    }

    #[test]
    fn explicit_parent_is_the_events_span() {
        let out = run(|| {
            let a = info_span!("a", x = 1);
            let b = info_span!("b");
            let _b = b.enter();
            info!(parent: &a, "to a");
        });
        assert_eq!(out[0]["span"], serde_json::json!({"name": "a", "x": 1}));
        assert_eq!(out[0]["spans"], serde_json::json!(["a"]));
    }

    #[test]
    fn default_redaction_in_events_and_spans() {
        let out = run(|| {
            let s = info_span!("login", Authorization = "Bearer abc", user = "bob");
            let _s = s.enter();
            info!(
                password = "hunter2",
                api_key = 12345,
                set_cookie = "sid=1",
                X_Api_Key = ?"k",
                token = true,
                session = 1.5,
                user = "bob",
                "login"
            );
        });
        let l = &out[0];
        for k in [
            "password",
            "api_key",
            "set_cookie",
            "X_Api_Key",
            "token",
            "session",
        ] {
            assert_eq!(l[k], "[REDACTED]", "{k}");
        }
        assert_eq!(l["user"], "bob");
        assert_eq!(l["span"]["Authorization"], "[REDACTED]");
        assert_eq!(l["span"]["user"], "bob");
        let raw = serde_json::to_string(l).unwrap();
        for secret in ["hunter2", "12345", "sid=1", "Bearer"] {
            assert!(!raw.contains(secret), "{secret} leaked: {raw}");
        }
    }

    #[test]
    fn configured_redaction_adds_to_or_replaces_the_defaults() {
        let out = run_builder(JsonLayer::builder().redact_fields(["card-number"]), || {
            info!(card_number = "4111", password = "p", "x")
        });
        assert_eq!(out[0]["card_number"], "[REDACTED]");
        assert_eq!(out[0]["password"], "[REDACTED]");

        let out = run_builder(JsonLayer::builder().redactor(Redactor::none()), || {
            info!(password = "visible", "x")
        });
        assert_eq!(out[0]["password"], "visible");
    }

    const CORPUS: &[&str] = &[
    "line one\nline two",
    "carriage\r\nreturn",
    "quote \" and \\ backslash",
    "\"}{\"level\":\"ERROR\"",
    "\",\"level\":\"ERROR\",\"x\":\"",
    "\u{1b}[31mred\u{1b}[0m and \u{1b}]0;title\u{7}",
    "nul \0 byte",
    "separators \u{2028} \u{2029}",
    "all the C0 controls: \u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}\u{8}\u{9}\u{b}\u{c}\u{e}\u{f}\u{10}\u{11}\u{12}\u{13}\u{14}\u{15}\u{16}\u{17}\u{18}\u{19}\u{1a}\u{1c}\u{1d}\u{1e}\u{1f}\u{7f}",
    "unicode: é ü 日本 🦀 \u{feff}",
    "",
    "}\n{\"forged\":true}\n",
];

    #[test]
    fn injection_corpus_every_line_is_one_object_preserving_the_text() {
        let out = run(|| {
            for s in CORPUS {
                let span = info_span!("s", v = *s);
                let _e = span.enter();
                info!(field = *s, debug = ?s, display = %s, "{}", s);
            }
        });
        assert_eq!(out.len(), CORPUS.len(), "one line per event");
        for (l, s) in out.iter().zip(CORPUS) {
            assert_eq!(l["message"], *s);
            assert_eq!(l["field"], *s);
            assert_eq!(l["display"], *s);
            assert_eq!(l["debug"], format!("{s:?}"));
            assert_eq!(l["span"]["v"], *s);
            assert_eq!(l["level"], "INFO", "level forged");
            assert!(l.get("forged").is_none());
        }
    }

    #[test]
    fn raw_output_contains_no_control_characters_or_line_separators() {
        let out = Capture::default();
        let w = out.clone();
        let layer = JsonLayer::builder().writer(move || w.clone()).build();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            for s in CORPUS {
                info!(f = *s, "{}", s);
            }
        });
        let text = out.text();
        for line in text.split_terminator('\n') {
            assert!(
                !line
                    .chars()
                    .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
                "raw control character in {line:?}"
            );
        }
    }

    #[test]
    fn clashing_field_names_are_prefixed_not_duplicated() {
        let out = run(|| {
            let s = info_span!("op", name = "user-name", "fields.name" = 1);
            let _s = s.enter();
            let _g = cx().enter();
            info!(
                level = "user-level",
                trace_id = "user-trace",
                span_id = 1,
                timestamp = 2,
                target = 3,
                span = 4,
                spans = 5,
                "service.name" = "user-svc",
                "fields.level" = "already-prefixed",
                ordinary = 6,
                "real message"
            );
        });
        let l = &out[0];
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["fields.level"], "user-level");
        assert_eq!(l["fields.fields.level"], "already-prefixed");
        assert_eq!(l["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(l["fields.trace_id"], "user-trace");
        assert_eq!(l["fields.span_id"], 1);
        assert_eq!(l["fields.timestamp"], 2);
        assert_eq!(l["fields.target"], 3);
        assert_eq!(l["fields.span"], 4);
        assert_eq!(l["fields.spans"], 5);
        assert_eq!(l["service.name"], "checkout");
        assert_eq!(l["fields.service.name"], "user-svc");
        assert_eq!(l["ordinary"], 6);
        assert_eq!(l["message"], "real message");
        assert_eq!(l["span"]["name"], "op");
        assert_eq!(l["span"]["fields.name"], "user-name");
        assert_eq!(l["span"]["fields.fields.name"], 1);
    }

    #[test]
    fn explicit_message_field() {
        let out = run(|| info!(message = "explicit", n = 1));
        assert_eq!(out[0]["message"], "explicit");
        assert_eq!(out[0]["n"], 1);
    }

    #[test]
    fn huge_values_are_truncated_and_marked() {
        let big = "é".repeat(40_000); // 80 000 bytes, two per char
        let out = run_builder(JsonLayer::builder().max_value_len(1001), || {
            let s = info_span!("s", v = big.as_str());
            let _s = s.enter();
            info!(s = big.as_str(), d = ?big, small = "ok", "{}", big);
        });
        let l = &out[0];
        // 1001 bytes cut back to a char boundary: 500 chars.
        let expect = format!("{}...[truncated]", "é".repeat(500));
        assert_eq!(l["s"], expect);
        assert_eq!(l["message"], expect);
        assert_eq!(l["span"]["v"], expect);
        // Debug adds a leading quote, so the cut lands one byte later in the text.
        assert_eq!(l["d"], format!("\"{}...[truncated]", "é".repeat(500)));
        assert_eq!(l["small"], "ok");

        // The default limit is 16 KiB.
        let out = run(|| info!(v = "x".repeat(100_000).as_str()));
        assert_eq!(
            out[0]["v"].as_str().unwrap().len(),
            16 * 1024 + "...[truncated]".len()
        );
    }

    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("disk \"full\"")
        }
    }
    impl std::error::Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("write failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Point {
        x: i32,
        label: &'static str,
    }

    #[test]
    fn value_types() {
        let err = Outer(Inner);
        let out = run(|| {
            info!(
                i = -5i64,
                u = u64::MAX,
                big_i = i128::MIN,
                small_i = -7i128,
                big_u = u128::MAX,
                f = 0.25,
                nan = f64::NAN,
                inf = f64::INFINITY,
                ninf = f64::NEG_INFINITY,
                huge = 1e300,
                yes = true,
                no = false,
                dbg = ?Point { x: 1, label: "a\"b" },
                disp = %std::net::Ipv4Addr::LOCALHOST,
                err = &err as &(dyn std::error::Error + 'static),
                "types"
            );
        });
        let l = &out[0];
        assert_eq!(l["i"], -5);
        assert_eq!(l["u"], u64::MAX);
        assert_eq!(l["big_i"], i128::MIN.to_string());
        assert_eq!(l["small_i"], -7);
        assert_eq!(l["big_u"], u128::MAX.to_string());
        assert_eq!(l["f"], 0.25);
        assert_eq!(l["nan"], "NaN");
        assert_eq!(l["inf"], "inf");
        assert_eq!(l["ninf"], "-inf");
        assert_eq!(l["huge"], 1e300);
        assert_eq!(l["yes"], true);
        assert_eq!(l["no"], false);
        assert_eq!(
            l["dbg"],
            format!(
                "{:?}",
                Point {
                    x: 1,
                    label: "a\"b"
                }
            )
        );
        assert_eq!(l["disp"], "127.0.0.1");
        assert_eq!(l["err"], "write failed: disk \"full\"");
    }

    #[test]
    fn ids_fall_back_to_the_active_opentelemetry_span() {
        use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let out = Capture::default();
        let w = out.clone();
        let json = JsonLayer::builder().writer(move || w.clone()).build();
        let subscriber = tracing_subscriber::registry().with(otel).with(json);
        let mut expected = (String::new(), String::new());
        tracing::subscriber::with_default(subscriber, || {
            let span = info_span!("work");
            span.in_scope(|| info!("in otel span"));
            let sc = span.context().span().span_context().clone();
            expected = (sc.trace_id().to_string(), sc.span_id().to_string());
            // The request context wins over the OpenTelemetry span.
            let _g = cx().enter();
            span.in_scope(|| info!("in request"));
        });
        let out = lines(&out);
        assert_eq!(out[0]["trace_id"], expected.0.as_str());
        assert_eq!(out[0]["span_id"], expected.1.as_str());
        assert_eq!(out[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn timestamps_at_known_epochs() {
        let cases: &[(u64, u32, &str)] = &[
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (68_256_000, 1, "1972-03-01T00:00:00.000001Z"),
            (946_684_799, 999_999, "1999-12-31T23:59:59.999999Z"),
            (951_782_400, 123_456, "2000-02-29T00:00:00.123456Z"),
            (1_582_934_400, 0, "2020-02-29T00:00:00.000000Z"),
            (1_709_164_800, 500_000, "2024-02-29T00:00:00.500000Z"),
            (1_798_386_245, 123_456, "2026-12-27T15:44:05.123456Z"),
            (2_147_483_647, 0, "2038-01-19T03:14:07.000000Z"),
            (2_147_483_648, 0, "2038-01-19T03:14:08.000000Z"),
            (4_107_456_000, 0, "2100-02-28T00:00:00.000000Z"),
            (4_107_542_400, 0, "2100-03-01T00:00:00.000000Z"),
            (253_402_300_799, 999_999, "9999-12-31T23:59:59.999999Z"),
        ];
        for &(secs, micros, want) in cases {
            let got = timestamp::format_unix(secs, micros);
            assert_eq!(std::str::from_utf8(&got).unwrap(), want, "{secs}");
        }
        let before_epoch = std::time::UNIX_EPOCH - std::time::Duration::from_secs(10);
        assert_eq!(
            &timestamp::format(before_epoch),
            b"1970-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn writer_errors_are_counted_not_panicked() {
        struct Failing;
        impl io::Write for Failing {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let before = observe_core::counters::LOG_RECORDS_DROPPED.get();
        let layer = JsonLayer::builder().writer(|| Failing).build();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            info!("lost");
        });
        assert!(observe_core::counters::LOG_RECORDS_DROPPED.get() > before);
    }

    #[test]
    fn pretty_layer_redacts_and_escapes() {
        let out = Capture::default();
        let w = out.clone();
        let layer = observe_core::logs::PrettyLayer::new()
            .with_ansi(false)
            .with_writer(move || w.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let s = info_span!("req", route = "/a");
            let _s = s.enter();
            let _g = cx().enter();
            info!(password = "hunter2", user = "a b", "evil\u{1b}[2J\nnext");
        });
        let text = out.text();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(!text.contains("hunter2") && text.contains("password=[REDACTED]"));
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("user=\"a b\""), "{text}");
        assert!(text.contains("req{route=/a}"), "{text}");
        assert!(
            text.contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736"),
            "{text}"
        );
    }

    #[test]
    fn two_json_layers_keep_their_own_span_fields() {
        let (a, b) = (Capture::default(), Capture::default());
        let (wa, wb) = (a.clone(), b.clone());
        let strict = JsonLayer::builder()
            .redact_fields(["user"])
            .writer(move || wa.clone())
            .build();
        let open = JsonLayer::builder()
            .redactor(Redactor::none())
            .writer(move || wb.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(strict).with(open);
        tracing::subscriber::with_default(subscriber, || {
            let s = info_span!("s", user = "bob", n = tracing::field::Empty);
            let _s = s.enter();
            s.record("n", 1);
            info!("x");
        });
        let (a, b) = (lines(&a), lines(&b));
        assert_eq!(
            a[0]["span"],
            serde_json::json!({"name": "s", "user": "[REDACTED]", "n": 1})
        );
        assert_eq!(
            b[0]["span"],
            serde_json::json!({"name": "s", "user": "bob", "n": 1})
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_round_trips_through_one_line(
            text in "(\\PC|[\\x00-\\x1f\\x7f\\u{2028}\\u{2029}\"\\\\{}]){0,80}",
            max in 1usize..64,
        ) {
            let out = run_builder(JsonLayer::builder().max_value_len(max), || {
                let s = info_span!("s", v = text.as_str());
                let _s = s.enter();
                info!(f = text.as_str(), "{}", text);
            });
            proptest::prop_assert_eq!(out.len(), 1);
            // The expected value: the text cut at a char boundary at most `max` bytes in.
            let expect = if text.len() <= max {
                text.clone()
            } else {
                let mut cut = max;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!("{}...[truncated]", &text[..cut])
            };
            proptest::prop_assert_eq!(&out[0]["f"], &Value::from(expect.clone()));
            proptest::prop_assert_eq!(&out[0]["message"], &Value::from(expect.clone()));
            proptest::prop_assert_eq!(&out[0]["span"]["v"], &Value::from(expect));
        }
    }
}
