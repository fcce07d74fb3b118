//! observe's OpenTelemetry propagators against a `HashMap<String, String>` carrier.

mod propagation {
    use std::collections::{HashMap, HashSet};

    use observe_core::otel::opentelemetry::baggage::{BaggageExt, KeyValueMetadata};
    use observe_core::otel::opentelemetry::propagation::{
        TextMapCompositePropagator, TextMapPropagator,
    };
    use observe_core::otel::opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use observe_core::otel::opentelemetry::Context;
    use observe_core::propagation::{W3cBaggagePropagator, W3cPropagator};

    fn carrier(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fields_name_the_headers() {
        assert_eq!(
            W3cPropagator.fields().collect::<Vec<_>>(),
            ["traceparent", "tracestate"]
        );
        assert_eq!(
            W3cBaggagePropagator.fields().collect::<Vec<_>>(),
            ["baggage"]
        );
    }

    #[test]
    fn span_context_round_trips_through_a_hashmap() {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::new(0x03),
            false,
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
                .parse::<TraceState>()
                .unwrap(),
        );
        let cx = Context::new().with_remote_span_context(sc.clone());
        let mut map = HashMap::new();
        W3cPropagator.inject_context(&cx, &mut map);
        assert_eq!(
            map["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03"
        );
        assert_eq!(map["tracestate"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");

        let back = W3cPropagator.extract_with_context(&Context::new(), &map);
        let got = back.span().span_context().clone();
        assert_eq!(got.trace_id(), sc.trace_id());
        assert_eq!(got.span_id(), sc.span_id());
        assert_eq!(got.trace_flags(), sc.trace_flags());
        assert!(got.is_remote());
        assert_eq!(got.trace_state(), sc.trace_state());
    }

    #[test]
    fn invalid_context_injects_nothing() {
        let mut map = HashMap::new();
        W3cPropagator.inject_context(&Context::new(), &mut map);
        assert!(map.is_empty());
    }

    #[test]
    fn invalid_traceparent_leaves_the_context_alone() {
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let map = carrier(&[("traceparent", bad), ("tracestate", "foo=1")]);
            let cx = W3cPropagator.extract_with_context(&Context::new(), &map);
            assert!(!cx.has_active_span(), "{bad}");
        }
    }

    #[test]
    fn invalid_tracestate_is_dropped_but_traceparent_kept() {
        let map = carrier(&[
            (
                "traceparent",
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            ),
            ("tracestate", "foo=1,foo=2"),
        ]);
        let cx = W3cPropagator.extract_with_context(&Context::new(), &map);
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_valid() && sc.is_sampled());
        assert_eq!(sc.trace_state().header(), "");
    }

    #[test]
    fn baggage_round_trips_through_a_hashmap() {
        let cx = Context::new().with_baggage(vec![
            KeyValueMetadata::new("userId", "alice", ""),
            KeyValueMetadata::new("serverNode", "DF 28", "ttl=30"),
            KeyValueMetadata::new("note", "a,b;c=d%e é", ""),
        ]);
        let mut map = HashMap::new();
        W3cBaggagePropagator.inject_context(&cx, &mut map);
        let header = &map["baggage"];
        assert!(header.contains("serverNode=DF%2028;ttl=30"), "{header}");
        assert!(!header.contains(' '), "{header}");

        let back = W3cBaggagePropagator.extract_with_context(&Context::new(), &map);
        let got: HashSet<(String, String, String)> = back
            .baggage()
            .iter()
            .map(|(k, (v, m))| (k.to_string(), v.to_string(), m.as_str().to_owned()))
            .collect();
        let want: HashSet<(String, String, String)> = [
            ("userId", "alice", ""),
            ("serverNode", "DF 28", "ttl=30"),
            ("note", "a,b;c=d%e é", ""),
        ]
        .iter()
        .map(|(k, v, m)| (k.to_string(), v.to_string(), m.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn baggage_drops_invalid_members_only() {
        let map = carrier(&[("baggage", "good=1,bad key=2,fine=%20x")]);
        let cx = W3cBaggagePropagator.extract_with_context(&Context::new(), &map);
        let b = cx.baggage();
        assert_eq!(b.len(), 2);
        assert_eq!(b.get("good").unwrap().as_str(), "1");
        assert_eq!(b.get("fine").unwrap().as_str(), " x");
        let none = W3cBaggagePropagator.extract_with_context(&Context::new(), &HashMap::new());
        assert_eq!(none.baggage().len(), 0);
    }

    #[test]
    fn composite_propagator_carries_both() {
        let composite = TextMapCompositePropagator::new(vec![
            Box::new(W3cPropagator),
            Box::new(W3cBaggagePropagator),
        ]);
        let map = carrier(&[
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("baggage", "userId=alice"),
        ]);
        let cx = composite.extract_with_context(&Context::new(), &map);
        let mut out = HashMap::new();
        composite.inject_context(&cx, &mut out);
        assert_eq!(out, map);
    }
}
