#!/usr/bin/env python3
"""A Python OpenTelemetry-instrumented HTTP server for observe's cross-language tests.

Plain http.server; every request is handled inside a SERVER span of the OpenTelemetry SDK whose
parent is the context the SDK's W3C propagators (tracecontext + baggage) extract from the
request headers. Each GET answers with JSON describing what the Python side saw:

  {"path", "parent": {"trace_id", "span_id", "sampled", "is_remote", "tracestate"} or null,
   "span": {"trace_id", "span_id", "parent_span_id"},   the SERVER span the SDK made
   "baggage": {key: value}, "headers": {"traceparent", "tracestate", "baggage"}}

GET /status/<code> answers with that status code (same JSON body). Every answer is also kept:
GET /control/requests returns all of them, in order.

Spans are exported with the SDK's OTLP/HTTP exporter when --otlp-endpoint is given.

Usage: peer_server.py [--port N] [--otlp-endpoint http://127.0.0.1:PORT]
On start it prints one JSON line: {"port": N}. Loopback only.
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
SEEN = []
SEEN_LOCK = threading.Lock()
TRACER = None


def hex_ids(sc):
    return format(sc.trace_id, "032x"), format(sc.span_id, "016x")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def reply(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/control/requests":
            with SEEN_LOCK:
                return self.reply(200, list(SEEN))
        carrier = {k.lower(): v for k, v in self.headers.items()}
        parent_ctx = PROPAGATOR.extract(carrier)
        parent_sc = trace.get_current_span(parent_ctx).get_span_context()
        parent = None
        if parent_sc.is_valid:
            trace_id, span_id = hex_ids(parent_sc)
            parent = {
                "trace_id": trace_id,
                "span_id": span_id,
                "sampled": parent_sc.trace_flags.sampled,
                "is_remote": parent_sc.is_remote,
                "tracestate": parent_sc.trace_state.to_header() or None,
            }
        code = 200
        if self.path.startswith("/status/"):
            try:
                code = int(self.path[len("/status/"):])
            except ValueError:
                code = 400
        with TRACER.start_as_current_span(
            "GET", context=parent_ctx, kind=SpanKind.SERVER,
            attributes={"http.request.method": "GET", "url.path": self.path},
        ) as span:
            span.set_attribute("http.response.status_code", code)
            sc = span.get_span_context()
            trace_id, span_id = hex_ids(sc)
            seen = {
                "path": self.path,
                "parent": parent,
                "span": {
                    "trace_id": trace_id,
                    "span_id": span_id,
                    "parent_span_id": parent["span_id"] if parent else None,
                },
                "baggage": {k: str(v) for k, v in baggage.get_all(parent_ctx).items()},
                "headers": {h: carrier.get(h) for h in ("traceparent", "tracestate", "baggage")},
            }
        with SEEN_LOCK:
            SEEN.append(seen)
        self.reply(code, seen)


def main():
    global TRACER
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--otlp-endpoint", default="")
    args = ap.parse_args()

    provider = TracerProvider(resource=Resource.create({"service.name": "python-peer-server"}))
    if args.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=args.otlp_endpoint.rstrip("/") + "/v1/traces", timeout=5)))
    TRACER = provider.get_tracer("observe-tests.peer_server")

    ThreadingHTTPServer.daemon_threads = True
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(json.dumps({"port": httpd.server_address[1]}), flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        provider.shutdown()


if __name__ == "__main__":
    main()
