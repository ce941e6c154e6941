"""``mlops demo``, ``mlops up``, ``mlops serve``: the whole platform, headless or with its UI and gateway."""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from mlops_assets import settings
from mlops_assets.cli import _supervisor as sv
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
    """`dg dev` (Dagster's webserver + daemon), the gateway and, on a local store, the MLflow UI, until SIGTERM or
    Ctrl-C; then every child stops within STOP_SECONDS and no run stays STARTED."""
    supervisor = sv.Supervisor()
    supervisor.install_signal_handlers()  # first: a stop during the slow start-up below is not lost
    lay = settings.layout()
    instance = embedded_instance(lay)  # writes the embedded dagster.yaml before `dg dev` reads it
    exited = None
    try:
        urls = _start_children(supervisor, lay, args)
        print(", ".join(f"{name} on {url}" for name, url in urls.items()), flush=True)
        exited = supervisor.wait()
    finally:  # also when a child could not start: the ones already running must not be left behind
        print(f"stopping ({supervisor.reason or 'start-up failed'})", flush=True)
        sv.shut_down(supervisor, instance)
        print("stopped", flush=True)
    return 0 if exited is None else (exited.proc.returncode or 1)


def _start_children(supervisor: sv.Supervisor, lay: settings.Layout, args: argparse.Namespace) -> dict[str, str]:
    env = {**os.environ, "DAGSTER_HOME": str(settings.dagster_home(lay)),
           "MLOPS_HOME": str(lay.home), "MLOPS_GATEWAY_URL": f"http://{args.host}:{args.gateway_port}"}
    urls = {"Dagster UI": f"http://{args.host}:{args.port}", "gateway": env["MLOPS_GATEWAY_URL"]}
    if settings.local_mlflow_ui(lay):
        # Create (migrate) the store and the experiment now: three processes opening a new SQLite store at once
        # would run its schema migrations concurrently.
        platform_resources(lay)["tracking"].activate()
        urls["MLflow UI"] = f"http://{args.host}:{args.mlflow_port}"
        if not settings.mlflow_ui_url_overridden():
            env[settings.MLFLOW_UI_URL_VAR] = urls["MLflow UI"]  # the links in Dagster open this UI
        # MLflow's job runner (GenAI scorers, prompt optimisation) is of no use here and costs seven workers.
        supervisor.start("mlflow server", _mlflow_server_cmd(lay, args.host, args.mlflow_port),
                         env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    else:
        print(f"MLflow UI of the tracking server: {settings.mlflow_ui_url(lay)} (no local MLflow UI started)")
    supervisor.start("gateway", [sys.executable, "-m", "mlops_assets.cli", "serve", "--host", args.host,
                                 "--port", str(args.gateway_port)], env=env)
    workspace = Path(args.workspace).resolve()
    supervisor.start("dg dev", [_venv_tool("dg"), "dev", "-w", str(workspace), "-h", args.host,
                                "-p", str(args.port)], env=env, cwd=workspace.parent, whole_group=False)
    return urls


def _mlflow_server_cmd(lay: settings.Layout, host: str, port: int) -> list[str]:
    """The MLflow UI and REST API on the platform's own tracking store, registry and artifact root."""
    cmd = [_venv_tool("mlflow"), "server", "--host", host, "--port", str(port), "--workers", "1",
           "--backend-store-uri", settings.tracking_uri(lay), "--registry-store-uri", settings.registry_uri(lay)]
    root = settings.artifact_location(lay)
    return [*cmd, "--default-artifact-root", root] if root else cmd


def cmd_serve(args: argparse.Namespace) -> int:
    from mlops_assets.core.contracts import CHAMPION
    from mlops_assets.serving.config import GatewayConfig

    if args.workers < 1:
        print(f"mlops serve: --workers must be 1 or more, got {args.workers}", file=sys.stderr)
        return 2
    config = GatewayConfig.from_env(host=args.host, port=args.port)
    if args.workers == 1:
        from mlops_assets.serving.server import run_gateway

        run_gateway(config)
        return 0
    from mlops_assets.serving.workers import run_workers  # the supervisor alone: it loads no model

    print(f"serving {config.model_name}@{CHAMPION} on http://{config.host}:{config.port} "
          f"with {args.workers} workers", flush=True)
    run_workers(config, args.workers)
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

    p = sub.add_parser("up", help="start the Dagster UI + daemon, the serving gateway and the MLflow UI")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--gateway-port", type=int, default=5005)
    p.add_argument("--mlflow-port", type=int, default=5000,
                   help="port of the MLflow UI (only on a local store; a tracking server has its own UI)")
    p.add_argument("--workspace", default="workspace.yaml")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("serve", help="run the serving gateway in the foreground")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5005)
    p.add_argument("--workers", type=int, default=1,
                   help="gateway processes sharing the port (default 1); each loads the model and follows the "
                        "registry itself, the metrics are summed over all")
    p.set_defaults(func=cmd_serve)
