#!/usr/bin/env python3
"""Fixed-rate HTTP/1.1 load for benches/soak/soak.sh (stdlib only, loopback only).

Open loop: request i is due at start + i/rate; a pool of keep-alive connections takes the due
requests in order, so a slow server shows up as latency (measured from the due time, which
counts queueing, and from the send) instead of silently lowering the rate.

Usage: drive.py URL RATE SECONDS [CONNECTIONS]   -> one JSON line on stdout
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse


def main():
    url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    conns = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    u = urllib.parse.urlsplit(url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("loopback only")
    total = int(rate * seconds)
    lock = threading.Lock()
    state = {"next": 0}
    from_due, from_send, errors, statuses = [], [], [], {}
    start = time.monotonic() + 0.2

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= total:
                break
            # A few distinct ids: the route template stays one series.
            path = u.path.replace("{i}", str(i % 1000)) + ("?" + u.query if u.query else "")
            due = start + i / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            sent = time.monotonic()
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                done = time.monotonic()
                with lock:
                    from_due.append(done - due)
                    from_send.append(done - sent)
                    statuses[r.status] = statuses.get(r.status, 0) + 1
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start

    def pct(xs, q):
        if not xs:
            return None
        xs = sorted(xs)
        return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 3)

    print(json.dumps({
        "sent": total,
        "answered": len(from_send),
        "errors": len(errors),
        "first_errors": errors[:3],
        "statuses": statuses,
        "elapsed_s": round(elapsed, 1),
        "achieved_rate": round(len(from_send) / elapsed, 1) if elapsed > 0 else 0,
        "p50_ms": pct(from_send, 0.50),
        "p99_ms": pct(from_send, 0.99),
        "max_ms": pct(from_send, 1.0),
        "p99_from_due_ms": pct(from_due, 0.99),
    }))


if __name__ == "__main__":
    main()
