"""How long `mlops serve` takes from its process start to answering ``/ping`` 200 (the champion loaded and warmed).

Registers the demo champion's pipeline as ``benchmarks/serving.py`` does (a throw-away SQLite store, skops,
alias ``champion``), then starts the gateway ``--starts`` times and prints each start's wall time and the
process's CPU time until it was ready (on a quiet machine the wall time comes close to the CPU time; on a shared
one it is stretched by the other processes). ``--baseline DIR`` also starts the gateway from another checkout
(e.g. ``/work/main``), interleaved with this one, so machine drift hits both alike.

    .venv/bin/python benchmarks/startup.py --starts 5 [--baseline ../main]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import MODEL_NAME, ROOT, free_port, register_model, stop  # noqa: E402  (the serving benchmark's)

TICKS = os.sysconf("SC_CLK_TCK")


def one_start(code: Path, env: dict[str, str], log: Path, timeout: float = 180) -> tuple[float, float]:
    """(wall, CPU) seconds from the process start to the first /ping 200 of `mlops serve` run from ``code``."""
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(port)],
                            env={**env, "PYTHONPATH": str(code)}, cwd=code, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while time.monotonic() < started + timeout:
            if proc.poll() is not None:
                raise SystemExit(f"the gateway from {code} exited with {proc.returncode}; see {log}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                    wall = time.monotonic() - started
                    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                    return wall, (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime of all its threads
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise SystemExit(f"the gateway from {code} did not answer /ping 200 within {timeout:g}s; see {log}")
    finally:
        stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=5, help="starts per checkout (the summary gives medians)")
    parser.add_argument("--baseline", type=Path, help="another checkout to start alternately, e.g. ../main")
    args = parser.parse_args()
    codes = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        home = Path(tmp)
        print("training and registering the benchmark model ...", flush=True)
        uri, _ = register_model(home, "hist_gradient_boosting")
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "MLOPS_HOME": str(home),
               "MLOPS_MODEL_NAME": MODEL_NAME}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in codes}
        for n in range(args.starts):
            for name, code in codes.items():
                times[name].append(one_start(code, env, home / f"{name}.log"))
                wall, cpu = times[name][-1]
                print(f"  start {n + 1} {name:8} ready after {wall:5.2f}s (CPU {cpu:4.2f}s), load average "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
    print(f"\nprocess start -> /ping 200, {args.starts} start(s) each, {os.cpu_count()} CPUs:")
    for name, runs in times.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"  {name:8} wall median {statistics.median(walls):.2f}s (range {min(walls):.2f}-{max(walls):.2f}), "
              f"CPU median {statistics.median(cpus):.2f}s ({codes[name]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
