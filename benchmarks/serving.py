"""Our gateway (`mlops serve`) against the HTTP floor and `mlflow models serve`: same model, load and machine.

Registers the demo champion's pipeline (the platform's preprocessor: imputers, scaler, one-hot encoder; then
HistGradientBoosting, or ``--estimator logistic_regression``) in a throw-away SQLite MLflow store and starts
three servers on 127.0.0.1, each in its own process group:

- ``ours``: ``mlops serve`` (one process); with ``--workers N`` also ``ours-Nw``: ``mlops serve --workers N``,
  in the same rounds, in a row of its own (still against the one-process floor);
- ``floor``: a bare Starlette app on the same uvicorn stack, one process, that parses the JSON body and answers a
  constant prediction per row: what any Python gateway pays before it predicts anything;
- ``mlflow``: ``mlflow models serve --env-manager local``.

Every scenario (rows per request x keep-alive connections) runs on each server in turn, and the whole set is
repeated ``--rounds`` times with the order rotated, so drift on a shared machine hits all three alike; the
table gives the median of the rounds. The load generator is wrk when installed (closed loop, ``-t1``), else a
Python one in its own process (raw HTTP/1.1 on asyncio streams). Before the load, ours answers a few hundred
requests whose predictions must be identical to ``pipeline.predict`` on the same rows; any failed request
under load (non-2xx, socket errors, timeouts) fails the run. Also prints how long each server took from its
process start to answering ``/ping`` 200.

    .venv/bin/python benchmarks/serving.py --rounds 3 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "bench-model"
NUMERIC = ["age", "income", "debt_ratio", "credit_lines", "utilization"]
CATEGORICAL = ["region", "employment"]
SCENARIOS = ((1, 1), (1, 8), (1, 32), (32, 8))  # (rows per request, connections)
TARGET = (1, 8)  # the scenario the targets are judged on


# --- payloads ---------------------------------------------------------------------------------------------
def _rows(batch: int, count: int = 256):
    """``count`` requests' worth of demo rows (``batch`` each), nulls as None, as a DataFrame and JSON lists."""
    sys.path.insert(0, str(ROOT))
    from mlops_assets.core.demo import make_batch

    frame = make_batch(batch * count, seed=7)[NUMERIC + CATEGORICAL]
    return frame, frame.astype(object).where(frame.notna(), None).to_numpy().tolist()


def _bodies(batch: int, count: int = 256) -> list[bytes]:
    """JSON bodies in MLflow's dataframe_split form, each with ``batch`` different rows."""
    _, data = _rows(batch, count)
    return [json.dumps({"dataframe_split": {"columns": NUMERIC + CATEGORICAL,
                                            "data": data[k * batch:(k + 1) * batch]}}).encode()
            for k in range(count)]


# --- the Python load generator (runs in its own process) --------------------------------------------------
async def _client(host: str, port: int, requests: list[bytes], rows: int, deadline: float,
                  latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200 or len(json.loads(body)["predictions"]) != rows:
                errors.append(f"{status}: {body[:200]!r}")
    finally:
        writer.close()


async def _load(port: int, batch: int, concurrency: int, seconds: float) -> dict:
    requests = [b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body) for body in _bodies(batch)]
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client("127.0.0.1", port, requests, batch, started + seconds, latencies, errors)
                           for _ in range(concurrency)))
    return {"elapsed": time.perf_counter() - started, "latencies": latencies, "errors": errors}


def python_load(port: int, batch: int, concurrency: int, seconds: float, warmup: float) -> dict:
    """Warm up, then measure; in a child process so the client never shares a GIL with a server."""
    asyncio.run(_load(port, batch, concurrency, warmup))
    result = asyncio.run(_load(port, batch, concurrency, seconds))
    lat = sorted(result["latencies"])
    n = len(lat)
    return {"requests": n, "errors": len(result["errors"]), "first_error": (result["errors"] or [None])[0],
            "rps": n / result["elapsed"],
            "p50_ms": 1000 * statistics.median(lat) if n else float("nan"),
            "p99_ms": 1000 * lat[min(n - 1, int(0.99 * n))] if n else float("nan")}


# --- wrk --------------------------------------------------------------------------------------------------
_WRK_SCRIPT = """
local bodies = {%s}
local requests = {}
local i = 0
function init(args)
  for k, body in ipairs(bodies) do
    requests[k] = wrk.format("POST", "/invocations", {["Content-Type"] = "application/json"}, body)
  end
end
function request()
  i = i %% #requests + 1
  return requests[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"errors": %%d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def wrk_script(batch: int, path: Path) -> Path:
    bodies = ",".join(f"[==[{body.decode()}]==]" for body in _bodies(batch))
    path.write_text(_WRK_SCRIPT % bodies)
    return path


def wrk_load(port: int, script: Path, concurrency: int, seconds: float, warmup: float) -> dict:
    def run(duration: float) -> dict:
        cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
               "-s", str(script), f"http://127.0.0.1:{port}/invocations"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
        line = next(line for line in out.splitlines() if line.startswith("RESULT "))
        return json.loads(line[len("RESULT "):])

    if warmup > 0:
        run(warmup)
    r = run(seconds)
    return {"requests": r["requests"], "errors": r["errors"], "first_error": None,
            "rps": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1000,
            "p99_ms": r["p99_us"] / 1000}


# --- the floor: a bare Starlette app on the same uvicorn stack -------------------------------------------
def run_floor(port: int) -> None:
    """Parses the JSON body, answers a constant prediction per row: no model, no validation, no logging."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    async def invocations(request):
        payload = json.loads(await request.body())
        return JSONResponse({"predictions": [0] * len(payload["dataframe_split"]["data"])})

    async def ping(request):
        return PlainTextResponse("\n")

    app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- the model and the servers ---------------------------------------------------------------------------
def register_model(home: Path, estimator: str):
    """Train the demo champion's pipeline (the platform's own preprocessor and ``estimator`` on the demo loans)
    and register it with a signature, skops, alias ``champion``; returns (URI, the fitted pipeline)."""
    import mlflow
    from mlflow.models import infer_signature

    sys.path.insert(0, str(ROOT))
    from mlops_assets.core.demo import make_batch
    from mlops_assets.core.spec import demo_spec
    from mlops_assets.core.training import build_pipeline, skops_trusted_types

    frame = make_batch(5000, seed=1)
    x, y = frame[NUMERIC + CATEGORICAL], frame["default"]
    model = build_pipeline(demo_spec(), estimator, {}, seed=0).fit(x, y)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, uri)
    experiment = client.create_experiment("bench", artifact_location=(home / "artifacts").as_uri())
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment):
        example = x.head(5)
        mlflow.sklearn.log_model(model, name="model", input_example=example,
                                 signature=infer_signature(example, model.predict(example)),
                                 serialization_format="skops", skops_trusted_types=skops_trusted_types(model),
                                 registered_model_name=MODEL_NAME)
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    return uri, model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], port: int, log: Path, workers: int = 1,
          timeout: float = 180) -> tuple[subprocess.Popen, float]:
    """Start a server in its own process group; returns it once /ping answers 200 (with ``workers``, once that
    many worker pids answered /health with a model loaded), with the seconds it took."""
    import httpx

    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    ready: set[int] = set()
    while time.monotonic() < started + timeout:
        if proc.poll() is not None:
            tail = log.read_text()[-2000:]
            raise RuntimeError(f"{cmd[:4]} exited with {proc.returncode}; see {log}:\n{tail}")
        try:
            if workers > 1:  # each request on a fresh connection: any worker may take it
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if health.status_code == 200:
                    ready.add(health.json()["pid"])
                if len(ready) == workers:
                    return proc, time.monotonic() - started
            elif httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return proc, time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    stop(proc)
    raise RuntimeError(f"{cmd[:4]} did not answer /ping within {timeout}s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    """The whole process group (mlflow models serve runs uvicorn as a child)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def check_predictions(port: int, model, batches: list[int]) -> int:
    """Ours must answer exactly what ``pipeline.predict`` gives on the same rows; returns the rows checked."""
    import httpx
    import numpy as np

    checked = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for batch in batches:
            frame, _ = _rows(batch, 64)
            expected = model.predict(frame).tolist()
            for k, body in enumerate(_bodies(batch, 64)):
                answer = client.post("/invocations", content=body, headers={"Content-Type": "application/json"})
                got = answer.json()["predictions"] if answer.status_code == 200 else answer.text
                want = expected[k * batch:(k + 1) * batch]
                if not np.array_equal(np.asarray(got), np.asarray(want)):
                    raise SystemExit(f"ours answered {got!r} for rows where pipeline.predict gives {want!r}")
                checked += batch
    return checked


def measure(port: int, batch: int, concurrency: int, args: argparse.Namespace, scripts: dict[int, Path]) -> dict:
    if scripts:
        return wrk_load(port, scripts[batch], concurrency, args.duration, args.warmup)
    cmd = [sys.executable, __file__, "--load-port", str(port), "--load-batch", str(batch),
           "--load-concurrency", str(concurrency), "--duration", str(args.duration), "--warmup", str(args.warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + args.warmup + 120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(runs: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms")} | \
        {"errors": sum(r["errors"] for r in runs), "first_error": next((r["first_error"] for r in runs
                                                                        if r["first_error"]), None)}


def report(results: dict[tuple[str, int, int], list[dict]], names: list[str], scenarios: list[tuple[int, ...]],
           args: argparse.Namespace,
           generator: str, ready: dict[str, float]) -> bool:
    """The medians and the ratios ours/floor and ours/mlflow, a row per variant of ours (one process, N workers);
    True when the one-process gateway meets the targets (the floor is one process too: the N-worker rows say
    what more processes give on this machine, where the load generator shares the cores) and no request
    failed on any server."""
    print(f"\nmedian of {args.rounds} interleaved round(s), {args.duration:g}s each, {os.cpu_count()} CPUs, "
          f"load generator: {generator}, estimator: {args.estimator}")
    ours_names = [n for n in names if n.startswith("ours")]
    others = [n for n in names if not n.startswith("ours")]
    print(f"{'rows':>4} {'conn':>4} {'ours':>7} | " + " ".join(f"{n + ' rps':>11}" for n in ["ours", *others])
          + f" | {'ours/floor':>10} {'ours/mlflow':>11} | " + " ".join(f"{n + ' p50':>10}" for n in ["ours", *others])
          + " | " + " ".join(f"{n + ' p99':>10}" for n in ["ours", *others]) + f" | {'p99 ours/floor':>14}")
    ok = True
    for batch, conns in scenarios:
        med = {n: _median(results[(n, batch, conns)]) for n in names}
        for variant in ours_names:
            ours = med[variant]
            row = [variant, *others]
            vs_floor = ours["rps"] / med["floor"]["rps"] if "floor" in med else float("nan")
            vs_mlflow = ours["rps"] / med["mlflow"]["rps"] if "mlflow" in med else float("nan")
            p99_ratio = ours["p99_ms"] / med["floor"]["p99_ms"] if "floor" in med else float("nan")
            label = variant.removeprefix("ours").lstrip("-") or "1w"
            print(f"{batch:>4} {conns:>4} {label:>7} | " + " ".join(f"{med[n]['rps']:>11.1f}" for n in row)
                  + f" | {vs_floor:>9.1%} {vs_mlflow:>10.1f}x | "
                  + " ".join(f"{med[n]['p50_ms']:>8.2f}ms" for n in row) + " | "
                  + " ".join(f"{med[n]['p99_ms']:>8.2f}ms" for n in row) + f" | {p99_ratio:>13.2f}x")
            if (batch, conns) == TARGET and variant == "ours":
                ok &= not vs_floor < 0.35 and not p99_ratio > 3 and not vs_mlflow < 10
        for n in names:
            if med[n]["errors"]:
                print(f"     {n}: {med[n]['errors']} failed request(s) {med[n]['first_error'] or ''}")
        ok &= all(med[n]["errors"] == 0 for n in names)
    print("ready (process start -> /ping 200; with N workers: all N loaded): "
          + ", ".join(f"{n} {s:.2f}s" for n, s in ready.items()))
    print(f"target (batch {TARGET[0]} / {TARGET[1]} connections, one process each: ours >= 35% of the floor's rps, "
          "p99 <= 3x the floor's, >= 10x mlflow; no failed request anywhere):", "met" if ok else "NOT met")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the table shows medians)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per scenario and server")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each measurement")
    parser.add_argument("--servers", default="ours,floor,mlflow", help="which servers, comma-separated")
    parser.add_argument("--workers", type=int, default=1,
                        help="also measure `mlops serve --workers N` (as ours-Nw) when N > 1")
    parser.add_argument("--estimator", default="hist_gradient_boosting",
                        choices=["hist_gradient_boosting", "logistic_regression"])
    parser.add_argument("--scenarios", default=",".join(f"{b}x{c}" for b, c in SCENARIOS),
                        help="ROWSxCONNECTIONS, comma-separated (measuring one lever: --scenarios 1x8)")
    parser.add_argument("--python-load", action="store_true", help="the Python load generator even with wrk")
    parser.add_argument("--load-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load-batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load-concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--floor-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_port:  # the load-generator child
        print(json.dumps(python_load(args.load_port, args.load_batch, args.load_concurrency, args.duration,
                                     args.warmup)))
        return 0
    if args.floor_port:  # the floor server child
        run_floor(args.floor_port)
        return 0

    scenarios = [tuple(int(v) for v in s.split("x")) for s in args.scenarios.split(",")]
    names = [n.strip() for n in args.servers.split(",")]
    if "ours" not in names:
        raise SystemExit("--servers must include 'ours'")
    workers_name = f"ours-{args.workers}w"
    if args.workers > 1:
        names.insert(names.index("ours") + 1, workers_name)
    use_wrk = shutil.which("wrk") is not None and not args.python_load
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        home = Path(tmp)
        print(f"training and registering the benchmark model ({args.estimator}) ...", flush=True)
        uri, model = register_model(home, args.estimator)
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "MLOPS_HOME": str(home),
               "MLOPS_MODEL_NAME": MODEL_NAME, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
               "PYTHONPATH": str(ROOT),  # mlflow runs `uvicorn` from PATH: this venv's, as if activated
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        ports = {n: free_port() for n in names}
        commands = {
            "ours": [sys.executable, "-m", "mlops_assets.cli", "serve", "--host", "127.0.0.1",
                     "--port", str(ports.get("ours", 0))],
            workers_name: [sys.executable, "-m", "mlops_assets.cli", "serve", "--host", "127.0.0.1",
                           "--port", str(ports.get(workers_name, 0)), "--workers", str(args.workers)],
            "floor": [sys.executable, __file__, "--floor-port", str(ports.get("floor", 0))],
            "mlflow": [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}/1",
                       "--env-manager", "local", "--host", "127.0.0.1", "--port", str(ports.get("mlflow", 0)),
                       "--workers", "1"],
        }
        scripts = {b: wrk_script(b, home / f"wrk-{b}.lua") for b in {b for b, _ in scenarios}} if use_wrk else {}
        results: dict[tuple[str, int, int], list[dict]] = {}
        ready: dict[str, float] = {}
        procs = []
        try:
            for name in names:
                proc, ready[name] = start(commands[name], env, ports[name], home / f"{name}.log",
                                          workers=args.workers if name == workers_name else 1)
                procs.append(proc)
                print(f"{name} on 127.0.0.1:{ports[name]} answered /ping after {ready[name]:.2f}s", flush=True)
            for name in (n for n in names if n.startswith("ours")):
                checked = check_predictions(ports[name], model, sorted({b for b, _ in scenarios}))
                print(f"{name}: {checked} rows answered exactly as pipeline.predict on the same rows", flush=True)
            for rnd in range(args.rounds):
                for batch, conns in scenarios:
                    order = names[rnd % len(names):] + names[:rnd % len(names)]
                    for name in order:
                        r = measure(ports[name], batch, conns, args, scripts)
                        results.setdefault((name, batch, conns), []).append(r)
                        print(f"  round {rnd + 1} {name:7} rows={batch:<3} conn={conns:<3} {r['rps']:8.1f} req/s  "
                              f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}",
                              flush=True)
        finally:
            for proc in procs:
                stop(proc)
        ok = report(results, names, scenarios, args, "wrk -t1" if use_wrk else "python (asyncio)", ready)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
