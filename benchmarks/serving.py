"""Our gateway (`mlops serve`) against `mlflow models serve`, same model, same load, same machine.

Registers one scikit-learn Pipeline (5 numeric + 2 categorical columns, imputers, scaler, one-hot encoder,
logistic regression: the platform's own shape) in a throw-away SQLite MLflow store, starts both servers on
127.0.0.1 in their own process groups, then drives each in turn with the same closed-loop load generator
(a separate process: ``concurrency`` keep-alive connections, each sending its next request when the last
answer arrived) at batch size 1 and 16. Prints throughput and p50/p99 latency, and the ratios ours/MLflow.

The load generator speaks raw HTTP/1.1 on asyncio streams so that the client, not the servers, costs as
little CPU as possible on a small machine; every answer is checked (status 200, one prediction per row).

    .venv/bin/python benchmarks/serving.py --duration 15 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


# --- the load generator (runs in its own process) --------------------------------------------------------
async def _client(host: str, port: int, requests: list[bytes], rows: int, deadline: float, budget: list[int],
                  latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
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


def _requests(port: int, batch: int, count: int = 256) -> list[bytes]:
    """Pre-encoded HTTP requests, each with ``batch`` different rows in MLflow's dataframe_split form."""
    sys.path.insert(0, str(ROOT))
    from mlops_assets.core.demo import make_batch

    frame = make_batch(batch * count, seed=7)[NUMERIC + CATEGORICAL]
    data = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    out = []
    for k in range(count):
        body = json.dumps({"dataframe_split": {"columns": NUMERIC + CATEGORICAL,
                                               "data": data[k * batch:(k + 1) * batch]}}).encode()
        out.append(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))
    return out


async def _load(port: int, batch: int, concurrency: int, seconds: float, max_requests: int) -> dict:
    requests = _requests(port, batch)
    latencies: list[float] = []
    errors: list[str] = []
    budget = [max_requests]
    started = time.perf_counter()
    await asyncio.gather(*(_client("127.0.0.1", port, requests, batch, started + seconds, budget, latencies,
                                   errors) for _ in range(concurrency)))
    return {"elapsed": time.perf_counter() - started, "latencies": latencies, "errors": errors}


def run_load(port: int, batch: int, concurrency: int, seconds: float, warmup: float,
             max_requests: int) -> dict:
    """Warm up, then measure; in a child process so the client never shares a GIL with a server."""
    asyncio.run(_load(port, batch, concurrency, warmup, max_requests))
    result = asyncio.run(_load(port, batch, concurrency, seconds, max_requests))
    lat = sorted(result["latencies"])
    n = len(lat)
    return {"requests": n, "errors": len(result["errors"]), "first_error": (result["errors"] or [None])[0],
            "rps": n / result["elapsed"], "rows_per_s": n * batch / result["elapsed"],
            "p50_ms": 1000 * statistics.median(lat) if n else float("nan"),
            "p99_ms": 1000 * lat[min(n - 1, int(0.99 * n))] if n else float("nan")}


# --- the model and the servers ---------------------------------------------------------------------------
def register_model(home: Path) -> str:
    """Train and register the benchmark model with a signature, skops, alias `champion`; returns the URI."""
    import mlflow
    import skops.io as sio
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    sys.path.insert(0, str(ROOT))
    from mlops_assets.core.demo import make_batch

    frame = make_batch(5000, seed=1)
    x, y = frame[NUMERIC + CATEGORICAL], frame["default"]
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))])
    pre = ColumnTransformer([("num", numeric, NUMERIC), ("cat", categorical, CATEGORICAL)])
    model = Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=1000))]).fit(x, y)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, uri)
    experiment = client.create_experiment("bench", artifact_location=(home / "artifacts").as_uri())
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment):
        example = x.head(5)
        mlflow.sklearn.log_model(model, name="model", input_example=example,
                                 signature=infer_signature(example, model.predict(example)),
                                 serialization_format="skops",
                                 skops_trusted_types=sio.get_untrusted_types(data=sio.dumps(model)),
                                 registered_model_name=MODEL_NAME)
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    return uri


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], port: int, log: Path,
          timeout: float = 180) -> subprocess.Popen:
    """Start a server in its own process group and wait until /ping answers 200."""
    import httpx

    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text()[-2000:]
            raise RuntimeError(f"{cmd[:4]} exited with {proc.returncode}; see {log}:\n{tail}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
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


def measure(port: int, batch: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--load-port", str(port), "--load-batch", str(batch),
           "--concurrency", str(args.concurrency), "--duration", str(args.duration),
           "--warmup", str(args.warmup), "--max-requests", str(args.max_requests)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + args.warmup + 120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each scenario")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--batch-sizes", default="1,16", help="rows per request, comma-separated")
    parser.add_argument("--max-requests", type=int, default=500_000, help="request cap per scenario")
    parser.add_argument("--mlflow-workers", type=int, default=1,
                        help="uvicorn workers for mlflow (its default: 1)")
    parser.add_argument("--load-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load-batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_port:  # the load-generator child
        print(json.dumps(run_load(args.load_port, args.load_batch, args.concurrency, args.duration,
                                  args.warmup, args.max_requests)))
        return 0

    batches = [int(b) for b in args.batch_sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        home = Path(tmp)
        print("training and registering the benchmark model ...", flush=True)
        uri = register_model(home)
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "MLOPS_HOME": str(home),
               "MLOPS_MODEL_NAME": MODEL_NAME, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
               "PYTHONPATH": str(ROOT),  # mlflow runs `uvicorn` from PATH: this venv's, as if activated
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        ours_port, mlflow_port = free_port(), free_port()
        servers = {
            "ours": ([sys.executable, "-m", "mlops_assets.cli", "serve", "--host", "127.0.0.1",
                      "--port", str(ours_port)], ours_port),
            "mlflow": ([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}/1",
                        "--env-manager", "local", "--host", "127.0.0.1", "--port", str(mlflow_port),
                        "--workers", str(args.mlflow_workers)], mlflow_port),
        }
        results: dict[tuple[str, int], dict] = {}
        procs = []
        try:
            for name, (cmd, port) in servers.items():
                print(f"starting {name} on 127.0.0.1:{port} ...", flush=True)
                procs.append(start(cmd, env, port, home / f"{name}.log"))
            for batch in batches:
                for name, (_, port) in servers.items():
                    results[(name, batch)] = r = measure(port, batch, args)
                    print(f"  {name:6} batch={batch:<3} {r['rps']:8.1f} req/s {r['rows_per_s']:9.1f} rows/s  "
                          f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}"
                          + (f" ({r['first_error']})" if r["errors"] else ""), flush=True)
        finally:
            for proc in procs:
                stop(proc)
        print(f"\nconcurrency {args.concurrency}, {args.duration:g}s per scenario, {os.cpu_count()} CPUs, "
              f"mlflow {args.mlflow_workers} worker(s), load generator in its own process")
        print(f"{'batch':>5} | {'ours req/s':>10} {'mlflow req/s':>12} {'ratio':>6} | {'ours p50':>8} "
              f"{'mlflow p50':>10} | {'ours p99':>8} {'mlflow p99':>10} {'ratio':>6}")
        ok = True
        for batch in batches:
            ours, theirs = results[("ours", batch)], results[("mlflow", batch)]
            ratio, p99_ratio = ours["rps"] / theirs["rps"], ours["p99_ms"] / theirs["p99_ms"]
            ok &= ratio >= 5 and p99_ratio <= 1 and ours["errors"] == 0
            print(f"{batch:>5} | {ours['rps']:>10.1f} {theirs['rps']:>12.1f} {ratio:>5.1f}x | "
                  f"{ours['p50_ms']:>6.2f}ms {theirs['p50_ms']:>8.2f}ms | {ours['p99_ms']:>6.2f}ms "
                  f"{theirs['p99_ms']:>8.2f}ms {p99_ratio:>5.2f}x")
        print("target (>= 5x throughput, p99 no worse, no errors):", "met" if ok else "NOT met")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
