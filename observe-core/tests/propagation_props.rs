//! Property tests: encode-then-parse round trips and "arbitrary input never panics".

use proptest::prelude::*;

/// A valid tracestate key: simple or `tenant@system`.
pub fn ts_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_*/-]{0,20}",
        "[a-z0-9][a-z0-9_*/-]{0,10}@[a-z][a-z0-9_*/-]{0,13}",
    ]
}

/// A valid tracestate value: printable ASCII without `,` `=`, not ending in a space.
pub fn ts_value() -> impl Strategy<Value = String> {
    "[ -+\\--<>-~]{0,30}[!-+\\--<>-~]"
}

mod propagation {
    use super::*;
    use http::{HeaderMap, HeaderValue};
    use observe_core::context::{SpanId, TraceFlags, TraceId};
    use observe_core::propagation::{
        extract, Baggage, BaggageBuilder, TraceParent, TraceState, TraceStateBuf,
    };

    fn trace_parent() -> impl Strategy<Value = TraceParent> {
        (any::<[u8; 16]>(), any::<[u8; 8]>(), 0u8..=3).prop_filter_map(
            "ids must not be all zero",
            |(t, s, f)| {
                let (t, s) = (TraceId(t), SpanId(s));
                (t.is_valid() && s.is_valid()).then(|| TraceParent::new(t, s, TraceFlags::new(f)))
            },
        )
    }

    proptest! {
        #[test]
        fn traceparent_round_trip(tp in trace_parent()) {
            let encoded = tp.encode();
            prop_assert_eq!(TraceParent::parse(&encoded), Ok(tp));
            prop_assert_eq!(tp.to_string(), TraceParent::as_str(&encoded));
        }

        #[test]
        fn traceparent_future_versions_keep_their_fields(
            tp in trace_parent(), version in 1u8..=0xfe, tail in "(-[a-z0-9]{0,20})?"
        ) {
            let mut input = tp.encode().to_vec();
            input[..2].copy_from_slice(format!("{version:02x}").as_bytes());
            input.extend_from_slice(tail.as_bytes());
            let parsed = TraceParent::parse(&input).unwrap();
            prop_assert_eq!(parsed.version, version);
            prop_assert_eq!((parsed.trace_id, parsed.parent_id, parsed.flags), (tp.trace_id, tp.parent_id, tp.flags));
        }

        #[test]
        fn traceparent_parse_never_panics(input in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(tp) = TraceParent::parse(&input) {
                // Whatever is accepted re-encodes to a valid version-00 header.
                prop_assert!(TraceParent::parse(&tp.encode()).is_ok());
            }
        }

        #[test]
        fn tracestate_round_trip(members in proptest::collection::vec((ts_key(), ts_value()), 0..32)) {
            let mut buf = TraceStateBuf::new();
            for (k, v) in members.iter().rev() {
                buf.insert(k, v).unwrap();
            }
            let header = buf.to_string();
            let parsed = TraceState::parse(&header).unwrap();
            prop_assert_eq!(parsed.len(), buf.len());
            prop_assert_eq!(parsed.encoded_len(), header.len());
            prop_assert!(parsed.iter().eq(buf.iter()));
            prop_assert_eq!(parsed.to_buf(), buf);
        }

        #[test]
        fn tracestate_parse_never_panics(input in "\\PC{0,200}") {
            if let Ok(ts) = TraceState::parse(&input) {
                prop_assert!(ts.len() <= 32);
                prop_assert_eq!(ts.iter().count(), ts.len());
            }
        }

        #[test]
        fn tracestate_truncation_respects_the_limit(
            members in proptest::collection::vec((ts_key(), "[a-z]{1,200}"), 0..32), max in 0usize..600
        ) {
            let mut buf = TraceStateBuf::new();
            for (k, v) in &members {
                buf.insert(k, v).unwrap();
            }
            let before = buf.len();
            let removed = buf.truncate_to(max);
            prop_assert!(buf.encoded_len() <= max);
            prop_assert_eq!(buf.len() + removed, before);
            prop_assert_eq!(buf.encoded_len(), buf.to_string().len());
        }

        #[test]
        fn baggage_round_trip(
            members in proptest::collection::vec(("[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}", "\\PC{0,20}", "(;[a-z]{1,5}(=[a-z0-9]{0,5})?){0,2}"), 0..20)
        ) {
            let mut b = BaggageBuilder::new();
            let mut want = std::collections::BTreeMap::new();
            for (k, v, props) in &members {
                b.insert_with_properties(k, v, props.trim_start_matches(';')).unwrap();
                want.insert(k.clone(), v.clone());
            }
            let header = b.to_string();
            prop_assert_eq!(header.len(), b.encoded_len());
            let parsed = Baggage::parse(&header).unwrap();
            prop_assert_eq!(parsed.len(), want.len());
            for m in parsed.iter() {
                prop_assert_eq!(Some(&m.value().into_owned()), want.get(m.key()));
            }
            prop_assert_eq!(b.to_header_value().map(|h| h.len()).unwrap_or(0), header.len());
        }

        #[test]
        fn baggage_parse_never_panics(input in "\\PC{0,200}") {
            if let Ok(b) = Baggage::parse(&input) {
                for m in b.iter() {
                    let _ = m.value();
                    for p in m.properties() {
                        let _ = p.value();
                    }
                }
                prop_assert_eq!(b.iter().count(), b.len());
            }
        }

        #[test]
        fn extract_never_panics_and_forwards_only_valid(
            tp in proptest::collection::vec(any::<u8>(), 0..70),
            ts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..3),
            bg in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..3),
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&tp) {
                headers.append("traceparent", v);
            }
            for line in &ts {
                if let Ok(v) = HeaderValue::from_bytes(line) {
                    headers.append("tracestate", v);
                }
            }
            for line in &bg {
                if let Ok(v) = HeaderValue::from_bytes(line) {
                    headers.append("baggage", v);
                }
            }
            let ex = extract(&headers);
            if let Some(v) = ex.tracestate {
                prop_assert!(ex.traceparent.is_some());
                let s = v.to_str().unwrap();
                prop_assert!(TraceState::parse(s).is_ok_and(|t| !t.is_empty() && t.encoded_len() <= 512));
            }
            if let Some(v) = ex.baggage {
                let s = v.to_str().unwrap();
                prop_assert!(Baggage::parse(s).is_ok_and(|b| !b.is_empty()));
            }
        }
    }
}
