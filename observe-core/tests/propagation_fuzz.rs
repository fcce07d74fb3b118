//! High-case-count property tests: every parser against mutated and near-valid input.
//! 20,000 cases per property; inputs are drawn from alphabets close to the grammars so that
//! the interesting branches (separators, OWS, '@', '%', limits) are hit, not just rejected early.

use proptest::prelude::*;

const CASES: u32 = 20_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

mod propagation {
    use super::*;
    use http::{HeaderMap, HeaderValue};
    use observe_core::propagation::{extract, Baggage, TraceParent, TraceState, TraceStateBuf};

    /// Strings over `alphabet`: much cheaper to generate than regex strategies in debug builds.
    fn text(alphabet: &'static [char], max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(alphabet), 0..max)
            .prop_map(|chars| chars.into_iter().collect())
    }

    const TS_CHARS: &[char] = &[
        'a', 'b', 'z', '0', '9', '@', '=', ',', ' ', '\t', '*', '/', '_', 'A', '.', '~', '-',
    ];
    const BG_CHARS: &[char] = &[
        'a', 'Z', '0', '=', ';', ',', ' ', '\t', '%', '2', 'F', '"', '\\', '!', '#', '.', '~', 'é',
        '-',
    ];

    /// Lists of `key=value` members joined by commas with optional whitespace: mostly valid,
    /// often over the member limits, sometimes with duplicates.
    fn members(
        key: &'static [char],
        value: &'static [char],
        max: usize,
    ) -> impl Strategy<Value = String> {
        proptest::collection::vec((text(key, 6), text(value, 8), any::<bool>()), 0..max).prop_map(
            |ms| {
                ms.into_iter()
                    .map(|(k, v, ows)| {
                        if ows {
                            format!(" {k}={v}\t")
                        } else {
                            format!("{k}={v}")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            },
        )
    }

    const KEY_CHARS: &[char] = &['a', 'b', 'c', '0', '_', '-', '*', '/'];
    const VALUE_CHARS: &[char] = &['x', 'Y', '1', ' ', '!', '~', '%', '2', '0'];

    const VALID: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// Bytes that matter to the traceparent grammar.
    const TP_BYTES: &[u8] = b"0123456789abcdefABCDEF-. \tf\xff";

    fn mutated_traceparent() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec((0usize..70, proptest::sample::select(TP_BYTES)), 0..4),
            0usize..70,
            proptest::option::of(text(&['-', '.', 'a', '0'], 10)),
        )
            .prop_map(|(edits, cut, tail)| {
                let mut v = VALID.to_vec();
                if v[0] == b'0' && cut % 3 == 0 {
                    v[..2].copy_from_slice(b"cc");
                }
                for (at, b) in edits {
                    if at < v.len() {
                        v[at] = b;
                    } else {
                        v.push(b);
                    }
                }
                if let Some(tail) = tail {
                    v.extend_from_slice(tail.as_bytes());
                }
                if cut < v.len() && cut % 5 == 0 {
                    v.truncate(cut);
                }
                v
            })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn fuzz_traceparent_mutations(input in mutated_traceparent()) {
            match TraceParent::parse(&input) {
                Ok(tp) => {
                    prop_assert!(tp.version != 0xff);
                    prop_assert!(tp.trace_id.is_valid() && tp.parent_id.is_valid());
                    prop_assert_eq!(tp.flags.bits() & !0x03, 0);
                    prop_assert!(input.len() == 55 || (tp.version != 0 && input.len() > 55 && input[55] == b'-'));
                    // The accepted fields are exactly what the input says.
                    prop_assert_eq!(&tp.encode()[3..53], &input[3..53]);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn fuzz_traceparent_bytes(input in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(tp) = TraceParent::parse(&input) {
                prop_assert_eq!(TraceParent::parse(&tp.encode()).map(|p| p.trace_id), Ok(tp.trace_id));
            }
        }

        #[test]
        fn fuzz_tracestate(input in prop_oneof![text(TS_CHARS, 200), members(KEY_CHARS, VALUE_CHARS, 40)]) {
            match TraceState::parse(&input) {
                Ok(ts) => {
                    prop_assert!(ts.len() <= 32);
                    let owned: TraceStateBuf = ts.into();
                    prop_assert_eq!(owned.len(), ts.len());
                    prop_assert_eq!(owned.encoded_len(), ts.encoded_len());
                    let again = owned.to_string();
                    let reparsed = TraceState::parse(&again).unwrap();
                    prop_assert!(reparsed.iter().eq(ts.iter()));
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn fuzz_baggage(input in prop_oneof![text(BG_CHARS, 200), members(KEY_CHARS, VALUE_CHARS, 70)]) {
            if let Ok(b) = Baggage::parse(&input) {
                prop_assert!(b.len() <= 64);
                for m in b.iter() {
                    prop_assert!(!m.key().is_empty());
                    let _ = m.value();
                    prop_assert_eq!(m.properties().count(), if m.properties_str().is_empty() { 0 } else { m.properties_str().split(';').count() });
                }
            }
        }

        #[test]
        fn fuzz_extract(
            tp in mutated_traceparent(),
            ts in proptest::collection::vec(text(TS_CHARS, 40), 0..4),
            bg in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4),
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&tp) {
                headers.append("traceparent", v);
            }
            for line in &ts {
                if let Ok(v) = HeaderValue::from_str(line) {
                    headers.append("tracestate", v);
                }
            }
            for line in &bg {
                if let Ok(v) = HeaderValue::from_bytes(line) {
                    headers.append("baggage", v);
                }
            }
            let ex = extract(&headers);
            if let Some(v) = &ex.tracestate {
                prop_assert!(ex.traceparent.is_some());
                prop_assert!(TraceState::parse(v.to_str().unwrap()).is_ok());
            }
            if let Some(v) = &ex.baggage {
                prop_assert!(Baggage::parse(v.to_str().unwrap()).is_ok());
            }
        }
    }
}
