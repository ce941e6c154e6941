"""A closed-loop load generator for the serving gateway, run as its own process (tests/serving/test_load.py).

``--connections`` keep-alive HTTP/1.1 connections (``http.client``, one thread each) send the same scoring
request again as soon as the last answer arrived, until a line (or EOF) arrives on stdin or ``--seconds`` pass.
Prints ``started`` once every connection has had an answer, then one JSON object: ``ok`` and ``failed`` counts,
answers per ``version/slot``, the distinct predictions each version gave, and a few failure samples. A failure
is anything but a 200 with one prediction per row: a status, a dropped connection, a timeout. Standard library
only, so it starts in a blink and needs nothing installed.

    python tests/support/loadgen.py --url http://127.0.0.1:5005 --body '{"inputs": {"x": [1.0], "colour": ["red"]}}'
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

MAX_SAMPLES = 5


class Tally:
    """What all connections saw; every update holds the lock (the threads share it)."""

    def __init__(self, connections: int) -> None:
        self.lock = threading.Lock()
        self.served: Counter[str] = Counter()
        self.answers: dict[str, set[str]] = {}
        self.failures: list[str] = []
        self.failed = 0
        self.waiting = connections
        self.started = threading.Event()

    def answered(self, first: bool) -> None:
        if first:
            with self.lock:
                self.waiting -= 1
                if self.waiting == 0:
                    self.started.set()

    def ok(self, version: str, slot: str, predictions: str) -> None:
        with self.lock:
            self.served[f"{version}/{slot}"] += 1
            seen = self.answers.setdefault(version, set())
            if len(seen) < MAX_SAMPLES:
                seen.add(predictions)

    def fail(self, why: str) -> None:
        with self.lock:
            self.failed += 1
            if len(self.failures) < MAX_SAMPLES:
                self.failures.append(why)

    def report(self, seconds: float) -> dict:
        return {"ok": sum(self.served.values()), "failed": self.failed, "seconds": round(seconds, 2),
                "served": dict(self.served), "answers": {v: sorted(a) for v, a in self.answers.items()},
                "failures": self.failures}


def connection(host: str, port: int, body: bytes, rows: int, tally: Tally, stop: threading.Event) -> None:
    """One keep-alive connection; reconnects after a failure, as a real client would."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    first = True
    while not stop.is_set():
        try:
            conn.request("POST", "/invocations", body=body, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            predictions = json.loads(payload).get("predictions") if resp.status == 200 else None
            if not isinstance(predictions, list) or len(predictions) != rows:
                tally.fail(f"{resp.status}: {payload[:200]!r}")
            else:
                tally.ok(resp.getheader("X-Model-Version", "?"), resp.getheader("X-Model-Slot", "?"),
                         json.dumps(predictions))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            tally.fail(f"{type(exc).__name__}: {exc}")
            conn.close()
        tally.answered(first)
        first = False
    conn.close()


def _stop_on_stdin(stop: threading.Event) -> None:
    """A line or EOF from the driver ends the run early."""
    sys.stdin.readline()
    stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the gateway, e.g. http://127.0.0.1:5005")
    parser.add_argument("--body", required=True, help="the JSON scoring request sent again and again")
    parser.add_argument("--rows", type=int, required=True, help="rows in the body: predictions expected")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0, help="hard limit, even if stdin stays open")
    args = parser.parse_args(argv)

    target = urlsplit(args.url)
    tally = Tally(args.connections)
    stop = threading.Event()
    body = args.body.encode()
    threads = [threading.Thread(target=connection, args=(target.hostname, target.port or 80, body, args.rows,
                                                         tally, stop), daemon=True)
               for _ in range(args.connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    threading.Thread(target=_stop_on_stdin, args=(stop,), daemon=True).start()
    if tally.started.wait(args.seconds):
        print("started", flush=True)
    stop.wait(max(0.0, args.seconds - (time.monotonic() - started)))
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    print(json.dumps(tally.report(time.monotonic() - started)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
