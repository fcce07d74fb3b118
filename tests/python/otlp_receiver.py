#!/usr/bin/env python3
"""A small OTLP receiver for observe's tests: traces and logs over gRPC and HTTP/protobuf.

It records what it receives and answers a JSON control API on the HTTP port:

  GET  /control/spans   flattened spans (trace_id, span_id, parent_span_id, name, kind,
                        attributes, status, resource, scope, start/end in unix nanos, transport)
  GET  /control/logs    flattened log records
  GET  /control/stats   request counts per outcome
  POST /control/clear   forget everything received
  POST /control/mode    body "ok" | "fail" | "stall": answer normally, fail every export
                        (gRPC UNAVAILABLE / HTTP 503), or accept and never answer

Usage: otlp_receiver.py [--grpc-port N] [--http-port N]   (0 or absent: pick a free port)
On start it prints one JSON line: {"grpc_port": ..., "http_port": ...}. Loopback only.
"""

import argparse
import gzip
import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS = {0: "unset", 1: "ok", 2: "error"}


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.spans = []
        self.logs = []
        self.mode = "ok"
        # Set while the mode is not "stall"; stalled handlers wait on it.
        self.unstalled = threading.Event()
        self.unstalled.set()
        self.stats = {"accepted": 0, "failed": 0, "stalled": 0}

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode
            if mode == "stall":
                self.unstalled.clear()
            else:
                self.unstalled.set()

    def gate(self):
        """Returns True when the export may be recorded and acknowledged."""
        with self.lock:
            mode = self.mode
            if mode == "fail":
                self.stats["failed"] += 1
                return False
            if mode == "stall":
                self.stats["stalled"] += 1
        if mode == "stall":
            # Accept and never answer (until the test changes the mode or stops us); then
            # refuse, so a late answer never counts as a delivery.
            self.unstalled.wait()
            return False
        return True

    def add_traces(self, req, transport):
        rows = []
        for rs in req.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    rows.append({
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": KINDS.get(s.kind, str(s.kind)),
                        "attributes": attrs(s.attributes),
                        "status": {"code": STATUS.get(s.status.code, str(s.status.code)),
                                   "message": s.status.message},
                        "resource": resource,
                        "scope": ss.scope.name,
                        "start_unix_nano": s.start_time_unix_nano,
                        "end_unix_nano": s.end_time_unix_nano,
                        "events": [{"name": e.name, "attributes": attrs(e.attributes)} for e in s.events],
                        "transport": transport,
                    })
        with self.lock:
            self.spans.extend(rows)
            self.stats["accepted"] += 1

    def add_logs(self, req, transport):
        rows = []
        for rl in req.resource_logs:
            resource = attrs(rl.resource.attributes)
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    rows.append({
                        "time_unix_nano": r.time_unix_nano,
                        "severity_number": r.severity_number,
                        "severity_text": r.severity_text,
                        "body": any_value(r.body),
                        "attributes": attrs(r.attributes),
                        "trace_id": r.trace_id.hex(),
                        "span_id": r.span_id.hex(),
                        "resource": resource,
                        "scope": sl.scope.name,
                        "transport": transport,
                    })
        with self.lock:
            self.logs.extend(rows)
            self.stats["accepted"] += 1


def any_value(v):
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return attrs(v.kvlist_value.values)
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which)


def attrs(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


STORE = Store()


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        if not STORE.gate():
            context.abort(grpc.StatusCode.UNAVAILABLE, "receiver in fault mode")
        STORE.add_traces(request, "grpc")
        return trace_service_pb2.ExportTraceServiceResponse()


class LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def Export(self, request, context):
        if not STORE.gate():
            context.abort(grpc.StatusCode.UNAVAILABLE, "receiver in fault mode")
        STORE.add_logs(request, "grpc")
        return logs_service_pb2.ExportLogsServiceResponse()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
        return data

    def reply(self, code, payload, content_type="application/json"):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        with STORE.lock:
            routes = {
                "/control/spans": lambda: list(STORE.spans),
                "/control/logs": lambda: list(STORE.logs),
                "/control/stats": lambda: dict(STORE.stats, mode=STORE.mode),
            }
            fn = routes.get(self.path)
            payload = fn() if fn else None
        if payload is None:
            self.reply(404, {"error": "not found"})
        else:
            self.reply(200, payload)

    def do_POST(self):
        if self.path == "/control/clear":
            self.body()
            with STORE.lock:
                STORE.spans.clear()
                STORE.logs.clear()
                STORE.stats = {"accepted": 0, "failed": 0, "stalled": 0}
            return self.reply(200, {"ok": True})
        if self.path == "/control/mode":
            mode = self.body().decode().strip()
            if mode not in ("ok", "fail", "stall"):
                return self.reply(400, {"error": "mode must be ok, fail or stall"})
            STORE.set_mode(mode)
            return self.reply(200, {"mode": mode})
        if self.path in ("/v1/traces", "/v1/logs"):
            data = self.body()
            if not STORE.gate():
                return self.reply(503, b"receiver in fault mode", "text/plain")
            try:
                if self.path == "/v1/traces":
                    req = trace_service_pb2.ExportTraceServiceRequest.FromString(data)
                    STORE.add_traces(req, "http")
                    resp = trace_service_pb2.ExportTraceServiceResponse()
                else:
                    req = logs_service_pb2.ExportLogsServiceRequest.FromString(data)
                    STORE.add_logs(req, "http")
                    resp = logs_service_pb2.ExportLogsServiceResponse()
            except Exception as e:  # a malformed body is the client's fault
                return self.reply(400, str(e).encode(), "text/plain")
            return self.reply(200, resp.SerializeToString(), "application/x-protobuf")
        self.reply(404, {"error": "not found"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc-port", type=int, default=0)
    ap.add_argument("--http-port", type=int, default=0)
    args = ap.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(LogsService(), server)
    grpc_port = server.add_insecure_port(f"127.0.0.1:{args.grpc_port}")
    if grpc_port == 0:
        print(json.dumps({"error": f"cannot bind gRPC port {args.grpc_port}"}), flush=True)
        sys.exit(1)
    server.start()

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    httpd = ThreadingHTTPServer(("127.0.0.1", args.http_port), Handler)
    print(json.dumps({"grpc_port": grpc_port, "http_port": httpd.server_address[1]}), flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        STORE.set_mode("ok")
        server.stop(0)


if __name__ == "__main__":
    main()
