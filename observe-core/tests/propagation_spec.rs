//! The examples of the W3C Trace Context and Baggage specifications, and the cases of the
//! W3C trace-context test suite, run through `extract` on real `http::HeaderMap`s.

mod propagation {
    use std::sync::Mutex;

    use http::{HeaderMap, HeaderName, HeaderValue};
    use observe_core::counters::PROPAGATION_INVALID;
    use observe_core::propagation::{
        extract, inject, Baggage, Extracted, TraceParent, TraceState, BAGGAGE_MAX_BYTES,
        BAGGAGE_MAX_MEMBERS, TRACESTATE_MAX_LEN,
    };

    /// The counter is process-wide; tests that read it serialize on this lock so their
    /// deltas are exact.
    static COUNTER_LOCK: Mutex<()> = Mutex::new(());

    const TP: &str = "00-12345678901234567890123456789012-1234567890123456-00";
    const TRACE_ID: &str = "12345678901234567890123456789012";

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    /// Extracts and reports how many drops were counted.
    fn extract_counted(pairs: &[(&str, &[u8])]) -> (Extracted, u64) {
        let map = headers(pairs);
        let _guard = COUNTER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let before = PROPAGATION_INVALID.get();
        let ex = extract(&map);
        (ex, PROPAGATION_INVALID.get() - before)
    }

    fn trace_id_of(value: &str) -> Option<String> {
        let (ex, _) = extract_counted(&[("traceparent", value.as_bytes())]);
        ex.traceparent.map(|tp| tp.trace_id.to_string())
    }

    fn tracestate_of(lines: &[&str]) -> (Option<String>, u64) {
        let mut pairs: Vec<(&str, &[u8])> = vec![("traceparent", TP.as_bytes())];
        pairs.extend(lines.iter().map(|l| ("tracestate", l.as_bytes())));
        let (ex, counted) = extract_counted(&pairs);
        assert_eq!(ex.traceparent.unwrap().trace_id.to_string(), TRACE_ID);
        (
            ex.tracestate.map(|v| v.to_str().unwrap().to_owned()),
            counted,
        )
    }

    fn ts_get(ts: &Option<String>, key: &str) -> Option<String> {
        let ts = ts.as_deref()?;
        TraceState::parse(ts).unwrap().get(key).map(str::to_owned)
    }

    fn baggage_of(lines: &[&[u8]]) -> (Option<String>, u64) {
        let pairs: Vec<(&str, &[u8])> = lines.iter().map(|l| ("baggage", *l)).collect();
        let (ex, counted) = extract_counted(&pairs);
        (ex.baggage.map(|v| v.to_str().unwrap().to_owned()), counted)
    }

    // ---- traceparent: the spec's examples ----

    #[test]
    fn traceparent_spec_examples() {
        let sampled =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(sampled.version, 0);
        assert_eq!(
            sampled.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sampled.parent_id.to_string(), "00f067aa0ba902b7");
        assert!(sampled.flags.is_sampled());
        let unsampled =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.flags.is_sampled());
        let congo =
            TraceParent::parse(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(
            congo.to_string(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
    }

    #[test]
    fn traceparent_level2_random_flag_is_kept() {
        let tp =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03").unwrap();
        assert!(tp.flags.is_sampled() && tp.flags.is_random());
        assert_eq!(&tp.encode()[53..], b"03");
        // Unknown bits must be zeroed ("Vendors MUST set those to zero").
        let tp =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-06").unwrap();
        assert_eq!(tp.flags.bits(), 0x02);
    }

    // ---- traceparent: the W3C test suite ----

    #[test]
    fn traceparent_missing_or_valid() {
        let (ex, counted) = extract_counted(&[]);
        assert_eq!(ex, Extracted::default());
        assert_eq!(counted, 0);
        let (ex, counted) = extract_counted(&[(
            "traceparent",
            b"00-12345678901234567890123456789012-1234567890123456-01",
        )]);
        assert_eq!(
            ex.traceparent.unwrap().parent_id.to_string(),
            "1234567890123456"
        );
        assert_eq!(counted, 0);
    }

    #[test]
    fn traceparent_duplicated_restarts_and_counts() {
        let (ex, counted) = extract_counted(&[
            (
                "traceparent",
                b"00-12345678901234567890123456789011-1234567890123456-01",
            ),
            (
                "traceparent",
                b"00-12345678901234567890123456789012-1234567890123456-01",
            ),
        ]);
        assert!(ex.traceparent.is_none());
        assert_eq!(counted, 1);
    }

    #[test]
    fn traceparent_header_names() {
        for wrong in ["trace-parent", "trace.parent"] {
            let (ex, _) = extract_counted(&[(wrong, TP.as_bytes())]);
            assert!(ex.traceparent.is_none(), "{wrong}");
        }
        for casing in ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"] {
            let (ex, _) = extract_counted(&[(casing, TP.as_bytes())]);
            assert!(ex.traceparent.is_some(), "{casing}");
        }
    }

    #[test]
    fn traceparent_invalid_values_restart_and_count() {
        let invalid = [
            // version 00 with trailing data
            "00-12345678901234567890123456789012-1234567890123456-01.",
            "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            // future version followed by something other than '-'
            "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
            "ff-12345678901234567890123456789012-1234567890123456-01",
            ".0-12345678901234567890123456789012-1234567890123456-01",
            "0.-12345678901234567890123456789012-1234567890123456-01",
            "000-12345678901234567890123456789012-1234567890123456-01",
            "0000-12345678901234567890123456789012-1234567890123456-01",
            "0-12345678901234567890123456789012-1234567890123456-01",
            "00-00000000000000000000000000000000-1234567890123456-01",
            "00-.2345678901234567890123456789012-1234567890123456-01",
            "00-1234567890123456789012345678901.-1234567890123456-01",
            "00-123456789012345678901234567890123-1234567890123456-01",
            "00-1234567890123456789012345678901-1234567890123456-01",
            "00-12345678901234567890123456789012-0000000000000000-01",
            "00-12345678901234567890123456789012-.234567890123456-01",
            "00-12345678901234567890123456789012-123456789012345.-01",
            "00-12345678901234567890123456789012-12345678901234567-01",
            "00-12345678901234567890123456789012-123456789012345-01",
            "00-12345678901234567890123456789012-1234567890123456-.0",
            "00-12345678901234567890123456789012-1234567890123456-0.",
            "00-12345678901234567890123456789012-1234567890123456-001",
            "00-12345678901234567890123456789012-1234567890123456-1",
            // uppercase hex is not HEXDIGLC
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            "",
            "00",
            // inner whitespace is not OWS
            "00-12345678901234567890123456789012 -1234567890123456-01",
        ];
        for value in invalid {
            let (ex, counted) = extract_counted(&[("traceparent", value.as_bytes())]);
            assert!(ex.traceparent.is_none(), "{value:?} must be rejected");
            assert_eq!(counted, 1, "{value:?} must be counted");
        }
    }

    #[test]
    fn traceparent_future_version() {
        for value in [
            "cc-12345678901234567890123456789012-1234567890123456-01",
            "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        ] {
            assert_eq!(trace_id_of(value).as_deref(), Some(TRACE_ID), "{value}");
        }
        // Future versions shorter than 55 characters are not parsed.
        assert_eq!(
            trace_id_of("cc-12345678901234567890123456789012-1234567890123456-1"),
            None
        );
        // They are downgraded to 00 when sent on.
        let tp = TraceParent::parse(
            b"cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        )
        .unwrap();
        assert_eq!(
            tp.to_string(),
            "00-12345678901234567890123456789012-1234567890123456-01"
        );
    }

    #[test]
    fn traceparent_ows_is_trimmed() {
        for value in [
            " 00-12345678901234567890123456789012-1234567890123456-01",
            "\t00-12345678901234567890123456789012-1234567890123456-01",
            "00-12345678901234567890123456789012-1234567890123456-01 ",
            "00-12345678901234567890123456789012-1234567890123456-01\t",
            "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
        ] {
            assert_eq!(trace_id_of(value).as_deref(), Some(TRACE_ID), "{value:?}");
        }
    }

    #[test]
    fn traceparent_non_utf8_does_not_panic() {
        let mut value = TP.as_bytes().to_vec();
        value[10] = 0xff;
        let (ex, counted) = extract_counted(&[("traceparent", &value)]);
        assert!(ex.traceparent.is_none());
        assert_eq!(counted, 1);
    }

    // ---- tracestate: the spec's examples ----

    #[test]
    fn tracestate_spec_examples() {
        let (ts, counted) = tracestate_of(&["rojo=00f067aa0ba902b7"]);
        assert_eq!(ts.as_deref(), Some("rojo=00f067aa0ba902b7"));
        assert_eq!(counted, 0);
        let (ts, _) = tracestate_of(&["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]);
        assert_eq!(ts_get(&ts, "rojo").as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(ts_get(&ts, "congo").as_deref(), Some("t61rcWkgMzE"));

        // Congo receives Rojo's header and puts its updated entry first.
        let mut owned = TraceState::parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
            .unwrap()
            .to_buf();
        owned.insert("congo", "ucfJifl5GOE").unwrap();
        assert_eq!(owned.to_string(), "congo=ucfJifl5GOE,rojo=00f067aa0ba902b7");
        // Re-entry overwrites rather than appends.
        let mut owned = TraceState::parse("congo=congosFirstPosition,rojo=rojosFirstPosition")
            .unwrap()
            .to_buf();
        owned.insert("congo", "congosSecondPosition").unwrap();
        assert_eq!(
            owned.to_string(),
            "congo=congosSecondPosition,rojo=rojosFirstPosition"
        );
    }

    // ---- tracestate: the W3C test suite ----

    #[test]
    fn tracestate_without_traceparent_is_not_read() {
        let (ex, counted) = extract_counted(&[("tracestate", b"foo=1,bar=2")]);
        assert!(ex.tracestate.is_none());
        assert_eq!(counted, 0);
        let (ex, _) = extract_counted(&[
            (
                "traceparent",
                b"00-00000000000000000000000000000000-1234567890123456-01",
            ),
            ("tracestate", b"foo=1"),
        ]);
        assert!(ex.tracestate.is_none());
    }

    #[test]
    fn tracestate_inherited_with_traceparent() {
        let (ts, _) = tracestate_of(&["foo=1,bar=2"]);
        assert_eq!(ts_get(&ts, "foo").as_deref(), Some("1"));
        assert_eq!(ts_get(&ts, "bar").as_deref(), Some("2"));
        for casing in ["TraceState", "TrAcEsTaTe", "TRACESTATE"] {
            let (ex, _) = extract_counted(&[("traceparent", TP.as_bytes()), (casing, b"foo=1")]);
            assert_eq!(ex.tracestate.unwrap(), "foo=1");
        }
        for wrong in ["trace-state", "trace.state"] {
            let (ex, _) = extract_counted(&[("traceparent", TP.as_bytes()), (wrong, b"foo=1")]);
            assert!(ex.tracestate.is_none());
        }
    }

    #[test]
    fn tracestate_empty_headers() {
        let (ts, counted) = tracestate_of(&[""]);
        assert_eq!(ts, None, "an empty tracestate is not sent on");
        assert_eq!(counted, 0, "empty is valid, not a drop");
        assert_eq!(tracestate_of(&["foo=1", ""]).0.as_deref(), Some("foo=1"));
        assert_eq!(tracestate_of(&["", "foo=1"]).0.as_deref(), Some("foo=1"));
        assert_eq!(tracestate_of(&[" , \t,"]).0, None);
    }

    #[test]
    fn tracestate_multiple_headers_combine_in_order() {
        let (ts, counted) = tracestate_of(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]);
        assert_eq!(ts.as_deref(), Some("foo=1,bar=2,rojo=1,congo=2,baz=3"));
        assert_eq!(counted, 0);
    }

    #[test]
    fn tracestate_duplicated_keys_are_dropped_and_counted() {
        for lines in [
            &["foo=1,foo=1"][..],
            &["foo=1,foo=2"],
            &["foo=1", "foo=1"],
            &["foo=1", "foo=2"],
        ] {
            let (ts, counted) = tracestate_of(lines);
            assert_eq!(ts, None, "{lines:?}");
            assert_eq!(counted, 1, "{lines:?}");
        }
    }

    #[test]
    fn tracestate_all_allowed_characters() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let key_with_vendor = format!("{key}@a-z0-9_-*/");
        let value: String = (0x20u8..=0x7e)
            .filter(|c| *c != b',' && *c != b'=')
            .map(char::from)
            .collect();
        for k in [key.to_owned(), key_with_vendor] {
            let header = format!("{k}={value}");
            let (ts, counted) = tracestate_of(&[&header]);
            assert_eq!(ts_get(&ts, &k).as_deref(), Some(value.as_str()));
            assert_eq!(counted, 0);
        }
    }

    #[test]
    fn tracestate_ows_handling() {
        for header in [
            "foo=1 \t , \t bar=2, \t baz=3",
            "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
        ] {
            let (ts, _) = tracestate_of(&[header]);
            assert_eq!(ts_get(&ts, "foo").as_deref(), Some("1"));
            assert_eq!(ts_get(&ts, "bar").as_deref(), Some("2"));
            assert_eq!(ts_get(&ts, "baz").as_deref(), Some("3"));
        }
        for header in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
            let (ts, _) = tracestate_of(&[header]);
            assert_eq!(ts_get(&ts, "foo").as_deref(), Some("1"), "{header:?}");
        }
    }

    #[test]
    fn tracestate_invalid_keys_and_values_drop_the_whole_header() {
        for header in [
            "foo =1",
            "FOO=1",
            "foo.bar=1",
            "foo@=1,bar=2",
            "@foo=1,bar=2",
            "foo@@bar=1,bar=2",
            "foo@bar@baz=1,bar=2",
            "foo=bar=baz",
            "foo=,bar=3",
            "foo",
            "foo=1,bar=tab\there",
        ] {
            let (ts, counted) = tracestate_of(&[header]);
            assert_eq!(ts, None, "{header:?}");
            assert_eq!(counted, 1, "{header:?}");
        }
    }

    #[test]
    fn tracestate_member_count_limit() {
        let lines = [
            "bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10",
            "bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20",
            "bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30",
        ];
        let mut ok = lines.to_vec();
        ok.push("bar31=31,bar32=32");
        let (ts, _) = tracestate_of(&ok);
        let ts = ts.unwrap();
        let parsed = TraceState::parse(&ts).unwrap();
        assert_eq!(parsed.len(), 32);
        assert_eq!(parsed.get("bar01"), Some("01"));
        // 32 members of 8 characters plus commas: 287 characters, under the 512 limit.
        assert_eq!(ts.len(), 287);

        let mut too_many = lines.to_vec();
        too_many.push("bar31=31,bar32=32,bar33=33");
        let (ts, counted) = tracestate_of(&too_many);
        assert_eq!(ts, None);
        assert_eq!(counted, 1);
    }

    #[test]
    fn tracestate_key_length_limits() {
        let ok = [
            format!("{}=1", "z".repeat(256)),
            format!("{}@{}=1", "t".repeat(241), "v".repeat(14)),
        ];
        for long in &ok {
            let (ts, _) = tracestate_of(&["foo=1", long]);
            assert_eq!(ts_get(&ts, "foo").as_deref(), Some("1"));
        }
        let bad = [
            format!("{}=1", "z".repeat(257)),
            format!("{}@v=1", "t".repeat(242)),
            format!("t@{}=1", "v".repeat(15)),
        ];
        for long in &bad {
            let (ts, counted) = tracestate_of(&["foo=1", long]);
            assert_eq!(ts, None);
            assert_eq!(counted, 1);
        }
    }

    #[test]
    fn tracestate_over_512_is_truncated_by_whole_entries() {
        // 20 entries of 31 characters: 639 with commas. The right-most go first.
        let members: Vec<String> = (0..20)
            .map(|i| format!("k{i:02}={}", "v".repeat(27)))
            .collect();
        let header = members.join(",");
        assert_eq!(header.len(), 639);
        let (ts, counted) = tracestate_of(&[&header]);
        let ts = ts.unwrap();
        assert_eq!(counted, 1, "truncation is a drop");
        assert!(ts.len() <= TRACESTATE_MAX_LEN);
        assert_eq!(
            ts,
            members[..16].join(","),
            "16 entries fit in 511 characters"
        );

        // An entry over 128 characters is removed before any other.
        let mut with_large = members[..15].to_vec();
        with_large.insert(3, format!("large={}", "x".repeat(200)));
        let (ts, _) = tracestate_of(&[&with_large.join(",")]);
        assert_eq!(ts.unwrap(), members[..15].join(","));
    }

    #[test]
    fn tracestate_hostile_sizes_are_bounded() {
        let huge: String = (0..10_000).map(|i| format!("k{i}=v,")).collect();
        let (ts, counted) = tracestate_of(&[&huge]);
        assert_eq!(ts, None);
        assert_eq!(counted, 1);
        let commas = ",".repeat(1 << 20);
        let (ts, counted) = tracestate_of(&[&commas]);
        assert_eq!(
            (ts, counted),
            (None, 0),
            "empty members only: valid and empty"
        );
        let mut non_utf8 = b"foo=1,bar=".to_vec();
        non_utf8.push(0xe9);
        let (ex, counted) =
            extract_counted(&[("traceparent", TP.as_bytes()), ("tracestate", &non_utf8)]);
        assert!(ex.tracestate.is_none());
        assert_eq!(counted, 1);
    }

    // ---- baggage: the spec's examples ----

    #[test]
    fn baggage_spec_example_with_properties() {
        let header = "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue";
        assert_eq!(header.len(), 86, "the spec's byte count");
        let b = Baggage::parse(header).unwrap();
        assert_eq!(b.len(), 3);
        let m: Vec<_> = b.iter().collect();
        assert_eq!((m[0].key(), &*m[0].value()), ("key1", "value1"));
        let props: Vec<_> = m[0]
            .properties()
            .map(|p| (p.key(), p.raw_value()))
            .collect();
        assert_eq!(props, [("property1", None), ("property2", None)]);
        assert_eq!((m[1].key(), &*m[1].value()), ("key2", "value2"));
        assert_eq!(m[1].properties().count(), 0);
        let props: Vec<_> = m[2]
            .properties()
            .map(|p| (p.key(), p.raw_value()))
            .collect();
        assert_eq!(props, [("propertyKey", Some("propertyValue"))]);

        let (fwd, counted) = baggage_of(&[header.as_bytes()]);
        assert_eq!(
            fwd.as_deref(),
            Some(header),
            "a valid single header is forwarded unchanged"
        );
        assert_eq!(counted, 0);
    }

    #[test]
    fn baggage_spec_examples_single_split_and_spaced() {
        let expect = |fwd: Option<String>| {
            let fwd = fwd.unwrap();
            let b = Baggage::parse(&fwd).unwrap();
            let got: Vec<(String, String)> = b
                .iter()
                .map(|m| (m.key().to_owned(), m.value().into_owned()))
                .collect();
            assert_eq!(
                got,
                [
                    ("userId".to_owned(), "alice".to_owned()),
                    ("serverNode".to_owned(), "DF 28".to_owned()),
                    ("isProduction".to_owned(), "false".to_owned()),
                ]
            );
        };
        expect(baggage_of(&[b"userId=alice,serverNode=DF%2028,isProduction=false"]).0);
        expect(baggage_of(&[b"userId=alice", b"serverNode=DF%2028,isProduction=false"]).0);
        let (fwd, counted) = baggage_of(&[
            b"userId =   alice",
            b"serverNode = DF%2028, isProduction = false",
        ]);
        assert_eq!(counted, 0);
        expect(fwd);
        for single in ["serverNode=DF%2028", "userId=alice", "isProduction=false"] {
            assert_eq!(baggage_of(&[single.as_bytes()]).0.as_deref(), Some(single));
        }
    }

    #[test]
    fn baggage_value_rules() {
        let b = Baggage::parse("k=a=b=c,e=").unwrap();
        assert_eq!(b.get("k").unwrap().value(), "a=b=c", "values may hold '='");
        assert_eq!(b.get("e").unwrap().value(), "", "empty values are allowed");
        let b = Baggage::parse("k=%E2%82%AC%C3,pct=100%25").unwrap();
        assert_eq!(
            b.get("k").unwrap().value(),
            "€\u{fffd}",
            "bad UTF-8 becomes U+FFFD"
        );
        assert_eq!(b.get("pct").unwrap().value(), "100%");
    }

    #[test]
    fn baggage_invalid_members_are_dropped_and_counted() {
        let (fwd, counted) = baggage_of(&[b"good=1,bad key=2,also\"bad=3,fine=4"]);
        assert_eq!(fwd.as_deref(), Some("good=1,fine=4"));
        assert_eq!(counted, 1);
        let (fwd, counted) = baggage_of(&[b"nokey"]);
        assert_eq!((fwd, counted), (None, 1));
        let (fwd, counted) = baggage_of(&[b"a=1", b"\xffb=2", b"c=3"]);
        assert_eq!(fwd.as_deref(), Some("a=1,c=3"));
        assert_eq!(counted, 1);
    }

    #[test]
    fn baggage_limits() {
        let members: Vec<String> = (0..BAGGAGE_MAX_MEMBERS + 1)
            .map(|i| format!("k{i}=v"))
            .collect();
        let (fwd, counted) = baggage_of(&[members[..BAGGAGE_MAX_MEMBERS].join(",").as_bytes()]);
        assert_eq!(Baggage::parse(&fwd.unwrap()).unwrap().len(), 64);
        assert_eq!(counted, 0);
        let (fwd, counted) = baggage_of(&[members.join(",").as_bytes()]);
        assert_eq!(fwd.unwrap(), members[..BAGGAGE_MAX_MEMBERS].join(","));
        assert_eq!(counted, 1);

        let exact = format!("k={}", "v".repeat(BAGGAGE_MAX_BYTES - 2));
        let (fwd, counted) = baggage_of(&[exact.as_bytes()]);
        assert_eq!((fwd.as_deref(), counted), (Some(exact.as_str()), 0));
    }

    #[test]
    fn baggage_one_megabyte_header_is_bounded() {
        let big = format!("a=1,huge={},b=2", "x".repeat(1 << 20));
        let (fwd, counted) = baggage_of(&[big.as_bytes()]);
        assert_eq!(fwd.as_deref(), Some("a=1,b=2"));
        assert_eq!(counted, 1);
        let many: String = (0..100_000).map(|i| format!("k{i}=v,")).collect();
        let (fwd, _) = baggage_of(&[many.as_bytes()]);
        let fwd = fwd.unwrap();
        assert!(fwd.len() <= BAGGAGE_MAX_BYTES);
        assert_eq!(Baggage::parse(&fwd).unwrap().len(), BAGGAGE_MAX_MEMBERS);
    }

    // ---- inject ----

    #[test]
    fn inject_writes_version_00_and_forwards_validated_state() {
        let (ex, _) = extract_counted(&[
            (
                "traceparent",
                b"cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            ),
            ("tracestate", b"congo=t61rcWkgMzE"),
            ("baggage", b"userId=alice"),
        ]);
        let cx = ex.traceparent.unwrap().child_context(true);
        let mut out = HeaderMap::new();
        out.insert("tracestate", HeaderValue::from_static("stale=1"));
        inject(&cx, ex.tracestate.as_ref(), ex.baggage.as_ref(), &mut out);
        let sent = out["traceparent"].to_str().unwrap();
        assert_eq!(sent, TraceParent::from_context(&cx).to_string());
        assert!(sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
        assert!(sent.ends_with("-01"));
        assert_eq!(out["tracestate"], "congo=t61rcWkgMzE");
        assert_eq!(out["baggage"], "userId=alice");

        // A new trace carries no tracestate: a stale one is removed.
        let mut out = HeaderMap::new();
        out.insert("tracestate", HeaderValue::from_static("stale=1"));
        out.insert("baggage", HeaderValue::from_static("user=own"));
        inject(
            &observe_core::context::RequestContext::new_root(false),
            None,
            None,
            &mut out,
        );
        assert!(out.get("tracestate").is_none());
        assert_eq!(
            out["baggage"], "user=own",
            "the caller's own baggage is left alone"
        );
        assert_eq!(out.get_all("traceparent").iter().count(), 1);
    }
}
