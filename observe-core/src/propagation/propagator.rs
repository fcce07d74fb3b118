//! OpenTelemetry `TextMapPropagator`s with observe's W3C rules, for the rest of the ecosystem.

use std::sync::OnceLock;

use opentelemetry::baggage::{BaggageExt, KeyValueMetadata};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;

use super::{
    baggage_from_lines, traceparent_from_lines, tracestate_from_lines, Baggage, BaggageBuilder,
    TraceParent, TraceState,
};
use crate::context::TraceFlags;

fn trace_fields() -> &'static [String] {
    static FIELDS: OnceLock<[String; 2]> = OnceLock::new();
    FIELDS.get_or_init(|| ["traceparent".to_owned(), "tracestate".to_owned()])
}

fn baggage_fields() -> &'static [String] {
    static FIELDS: OnceLock<[String; 1]> = OnceLock::new();
    FIELDS.get_or_init(|| ["baggage".to_owned()])
}

/// W3C Trace Context (`traceparent` + `tracestate`) as an OpenTelemetry propagator, with the
/// same validation as [`extract`](super::extract): future versions, flag masking, duplicate or
/// malformed headers rejected and counted.
///
/// ```
/// use std::collections::HashMap;
/// use observe_core::otel::opentelemetry::propagation::TextMapPropagator;
/// use observe_core::otel::opentelemetry::trace::TraceContextExt;
/// use observe_core::otel::opentelemetry::Context;
/// use observe_core::propagation::W3cPropagator;
///
/// let mut carrier = HashMap::new();
/// carrier.insert("traceparent".to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string());
/// let cx = W3cPropagator.extract_with_context(&Context::new(), &carrier);
/// assert!(cx.span().span_context().is_sampled());
///
/// let mut out = HashMap::new();
/// W3cPropagator.inject_context(&cx, &mut out);
/// assert_eq!(out["traceparent"], carrier["traceparent"]);
/// ```
#[derive(Copy, Clone, Debug, Default)]
pub struct W3cPropagator;

impl TextMapPropagator for W3cPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let tp = TraceParent::new(
            sc.trace_id().into(),
            sc.span_id().into(),
            TraceFlags::new(sc.trace_flags().to_u8()),
        );
        injector.set("traceparent", TraceParent::as_str(&tp.encode()).to_owned());
        let header = sc.trace_state().header();
        // OpenTelemetry's TraceState has its own, slightly looser rules: send only what
        // a W3C parser accepts.
        if TraceState::parse(&header).is_ok_and(|ts| !ts.is_empty()) {
            injector.set("tracestate", header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let lines = extractor.get_all("traceparent").unwrap_or_default();
        let Some(tp) = traceparent_from_lines(lines.iter().map(|l| l.as_bytes())) else {
            return cx.clone();
        };
        let trace_state = extractor
            .get_all("tracestate")
            .and_then(|lines| {
                let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
                tracestate_from_lines(&lines).ok().flatten()
            })
            .and_then(|buf| opentelemetry::trace::TraceState::from_key_value(buf.iter()).ok())
            .unwrap_or_default();
        let sc = SpanContext::new(
            tp.trace_id.into(),
            tp.parent_id.into(),
            opentelemetry::trace::TraceFlags::new(tp.flags.bits()),
            true,
            trace_state,
        );
        cx.with_remote_span_context(sc)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(trace_fields())
    }
}

/// W3C Baggage as an OpenTelemetry propagator: values percent-decoded on extract and
/// percent-encoded on inject; invalid members and members beyond the spec's limits dropped
/// and counted.
///
/// ```
/// use std::collections::HashMap;
/// use observe_core::otel::opentelemetry::baggage::BaggageExt;
/// use observe_core::otel::opentelemetry::propagation::TextMapPropagator;
/// use observe_core::otel::opentelemetry::Context;
/// use observe_core::propagation::W3cBaggagePropagator;
///
/// let mut carrier = HashMap::new();
/// carrier.insert("baggage".to_string(), "serverNode=DF%2028".to_string());
/// let cx = W3cBaggagePropagator.extract_with_context(&Context::new(), &carrier);
/// assert_eq!(cx.baggage().get("serverNode").unwrap().as_str(), "DF 28");
/// ```
#[derive(Copy, Clone, Debug, Default)]
pub struct W3cBaggagePropagator;

impl TextMapPropagator for W3cBaggagePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let mut out = BaggageBuilder::new();
        for (key, (value, metadata)) in cx.baggage() {
            // Entries that cannot be written (bad key, over the limits) are left out rather
            // than sent malformed.
            let _ = out.insert_with_properties(key.as_str(), value.as_str(), metadata.as_str());
        }
        if !out.is_empty() {
            injector.set("baggage", out.to_string());
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(lines) = extractor.get_all("baggage") else {
            return cx.clone();
        };
        let bytes: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let Some(text) = baggage_from_lines(&bytes) else {
            return cx.clone();
        };
        let Ok(baggage) = Baggage::parse(&text) else {
            return cx.clone();
        };
        let members: Vec<KeyValueMetadata> = baggage
            .iter()
            .map(|m| {
                KeyValueMetadata::new(
                    m.key().to_owned(),
                    m.value().into_owned(),
                    m.properties_str(),
                )
            })
            .collect();
        cx.with_baggage(members)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(baggage_fields())
    }
}
