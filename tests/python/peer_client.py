#!/usr/bin/env python3
"""A Python OpenTelemetry client for observe's cross-language tests.

It starts a root CLIENT span with the OpenTelemetry SDK, puts its own W3C trace context on an
HTTP GET (traceparent from the SDK span, the given tracestate carried by that span, the given
baggage, all written by the SDK's propagators), sends it, and prints one JSON line:

  {"trace_id", "span_id", "traceparent", "tracestate", "baggage",  what was sent
   "status", "body"}                                                 what came back

The span is exported with the SDK's OTLP/HTTP exporter when --otlp-endpoint is given (the
same receiver the Rust services export to), so the whole trace can be checked in one place.

Usage: peer_client.py --url URL [--tracestate "k=v,..."] [--baggage "k=v,..."]
                      [--otlp-endpoint http://127.0.0.1:PORT] [--timeout SECONDS]
Exit status: 0 when the request got any HTTP response, 2 on a transport error.
"""

import argparse
import json
import sys
import urllib.error
import urllib.request

from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def parse_pairs(text):
    """'a=1,b=2' -> [('a', '1'), ('b', '2')]; order kept (tracestate order matters)."""
    pairs = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((key.strip(), value.strip()))
    return pairs


class RootWithTraceState(Sampler):
    """Samples every root span and gives it our tracestate, as a vendor's sampler would
    (the SDK's default sampler gives a root span an empty one)."""

    def __init__(self, trace_state):
        self._trace_state = trace_state

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None,
                      links=None, trace_state=None):
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, self._trace_state)

    def get_description(self):
        return "RootWithTraceState"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--tracestate", default="")
    ap.add_argument("--baggage", default="")
    ap.add_argument("--otlp-endpoint", default="")
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()

    provider = TracerProvider(
        resource=Resource.create({"service.name": "python-peer-client"}),
        sampler=RootWithTraceState(TraceState(parse_pairs(args.tracestate))),
    )
    if args.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=args.otlp_endpoint.rstrip("/") + "/v1/traces",
                                    timeout=args.timeout)
        # Simple (synchronous) processor: the span is at the receiver when we exit.
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("observe-tests.peer_client")

    ctx = context.Context()
    for key, value in parse_pairs(args.baggage):
        ctx = baggage.set_baggage(key, value, context=ctx)

    propagator = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    with tracer.start_as_current_span("GET", context=ctx, kind=SpanKind.CLIENT) as span:
        headers = {}
        propagator.inject(headers, context=trace.set_span_in_context(span, ctx))
        sc = span.get_span_context()
        request = urllib.request.Request(args.url, headers=headers, method="GET")
        result = {
            "trace_id": format(sc.trace_id, "032x"),
            "span_id": format(sc.span_id, "016x"),
            "traceparent": headers.get("traceparent"),
            "tracestate": headers.get("tracestate"),
            "baggage": headers.get("baggage"),
        }
        code = 0
        try:
            with urllib.request.urlopen(request, timeout=args.timeout) as response:
                result["status"] = response.status
                result["body"] = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            result["status"] = e.code
            result["body"] = e.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:
            result["status"] = None
            result["error"] = str(e)
            code = 2
        span.set_attribute("http.response.status_code", result["status"] or 0)
    provider.shutdown()
    print(json.dumps(result), flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
