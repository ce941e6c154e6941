"""``mlops demo``, ``mlops up``, ``mlops serve``: the whole platform, headless or with its UI and gateway."""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlops_assets import settings
from mlops_assets.cli._instance import embedded_instance, platform_resources


def cmd_demo(args: argparse.Namespace) -> int:
    from mlops_assets.definitions import build_definitions
    from mlops_assets.headless.demo import run_demo
    from mlops_assets.serving.config import GatewayConfig
    from mlops_assets.serving.server import GatewayThread

    lay = settings.layout()
    started = time.monotonic()
    # The demo plays days in seconds: let drift retrain right after the first training.
    os.environ.setdefault("MLOPS_RETRAIN_COOLDOWN_SECONDS", "0")
    print(f"MLOPS_HOME={lay.home}")
    with embedded_instance(lay) as instance:
        # Create the MLflow store here, before the gateway's loader thread touches it: schema migrations
        # (alembic) must not run in two threads of one process at once.
        platform_resources(lay)["tracking"].activate()
        gateway = GatewayThread(GatewayConfig.from_env(port=args.port)).start()
        os.environ["MLOPS_GATEWAY_URL"] = gateway.url
        print(f"serving gateway on {gateway.url}")
        try:
            summary = run_demo(lambda: build_definitions(lay), instance, lay, gateway_url=gateway.url,
                               baseline_batches=args.batches, drift_batches=args.drift_batches, rows=args.rows,
                               drift=args.drift, traffic_rows=args.traffic, seed=args.seed)
        finally:
            gateway.stop()
    print("\nsummary")
    print(f"  runs: {len(summary.runs)} ({len(summary.failed_runs)} failed)")
    print(f"  dataset versions: {', '.join(summary.datasets)}")
    print(f"  drift detected on served traffic: {'yes' if summary.drift_detected else 'no'}")
    print(f"  champion: v{summary.champion} trained on dataset {summary.champion_dataset}")
    print(f"  took {time.monotonic() - started:.0f}s; open the UI with `mlops up` to see every stage")
    return 0 if summary.champion and not summary.failed_runs else 1


def _venv_tool(name: str) -> str:
    """A console script of this environment, found even when the venv is not activated."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def cmd_up(args: argparse.Namespace) -> int:
    """`dagster dev` (webserver + daemon) and the gateway, together, until Ctrl-C."""
    lay = settings.layout()
    env = {**os.environ, "DAGSTER_HOME": str(settings.dagster_home(lay)),
           "MLOPS_HOME": str(lay.home), "MLOPS_GATEWAY_URL": f"http://{args.host}:{args.gateway_port}"}
    workspace = Path(args.workspace).resolve()
    procs = [
        subprocess.Popen([sys.executable, "-m", "mlops_assets.cli", "serve", "--host", args.host,
                          "--port", str(args.gateway_port)], env=env),
        subprocess.Popen([_venv_tool("dagster"), "dev", "-w", str(workspace), "-h", args.host,
                          "-p", str(args.port)], env=env, cwd=workspace.parent),
    ]
    print(f"Dagster UI on http://{args.host}:{args.port}, gateway on http://{args.host}:{args.gateway_port}")
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    return max((p.returncode or 0) for p in procs)


def cmd_serve(args: argparse.Namespace) -> int:
    from mlops_assets.serving.config import GatewayConfig
    from mlops_assets.serving.server import run_gateway

    run_gateway(GatewayConfig.from_env(host=args.host, port=args.port))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole loop headless on the built-in demo data")
    p.add_argument("--batches", type=int, default=3, help="baseline batches to land first")
    p.add_argument("--drift-batches", type=int, default=2, help="drifted batches to land later")
    p.add_argument("--rows", type=int, default=2000, help="rows per batch")
    p.add_argument("--drift", type=float, default=0.6, help="drift strength in [0, 1]")
    p.add_argument("--traffic", type=int, default=600, help="rows of served traffic per phase")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--port", type=int, default=0, help="gateway port (0: a free one)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("up", help="start the Dagster UI + daemon and the serving gateway")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--gateway-port", type=int, default=5005)
    p.add_argument("--workspace", default="workspace.yaml")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("serve", help="run the serving gateway in the foreground")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5005)
    p.set_defaults(func=cmd_serve)
