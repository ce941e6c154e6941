"""The ``mlops`` command: the platform headless, from a terminal or a CI job."""

import argparse
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from mlops_assets import settings, tags

# The embedded default: SQLite storage in DAGSTER_HOME, no telemetry, and one training run at a time (a second
# retraining requested meanwhile waits in the queue, then finds the champion already trained on that data).
EMBEDDED_DAGSTER_YAML = f"""\
telemetry:
  enabled: false
run_queue:
  tag_concurrency_limits:
    - key: {tags.RUN_KIND}
      value: training
      limit: 1
"""


def _instance(lay: settings.Layout):
    """The persistent Dagster instance under the home (the one `dagster dev` shows with the same DAGSTER_HOME)."""
    from dagster import DagsterInstance

    os.environ.setdefault("DAGSTER_HOME", str(lay.dagster_home))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(EMBEDDED_DAGSTER_YAML, encoding="utf-8")
    return DagsterInstance.get()


def _resources(lay: settings.Layout) -> dict:
    from mlops_assets.definitions import build_resources

    return build_resources(lay)


def cmd_demo(args: argparse.Namespace) -> int:
    from mlops_assets.definitions import build_definitions
    from mlops_assets.headless.demo import run_demo
    from mlops_assets.serving.gateway import GatewayConfig, GatewayThread

    lay = settings.layout()
    started = time.monotonic()
    # The demo plays days in seconds: let drift retrain right after the first training.
    os.environ.setdefault("MLOPS_RETRAIN_COOLDOWN_SECONDS", "0")
    print(f"MLOPS_HOME={lay.home}")
    with _instance(lay) as instance:
        # Create the MLflow store here, before the gateway's loader thread touches it: schema migrations
        # (alembic) must not run in two threads of one process at once.
        _resources(lay)["tracking"].activate()
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
    env = {**os.environ, "DAGSTER_HOME": os.environ.get("DAGSTER_HOME", str(lay.dagster_home)),
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
    from mlops_assets.serving.gateway import GatewayConfig, run_gateway

    run_gateway(GatewayConfig.from_env(host=args.host, port=args.port))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from mlops_assets.core.demo import write_batches

    lay = settings.layout()
    written = write_batches(lay.landing, batches=args.batches, rows=args.rows, drift=args.drift, seed=args.seed)
    for path in written:
        print(path)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from mlops_assets import tags
    from mlops_assets.core.data import BatchRejected
    from mlops_assets.definitions import build_definitions
    from mlops_assets.headless.sensor_runner import Runner

    lay = settings.layout()
    for src in args.paths:
        src_path = Path(src)
        if not src_path.is_file():
            print(f"error: {src} is not a file", file=sys.stderr)
            return 2
        tmp = lay.landing / f".{src_path.name}.tmp"
        shutil.copyfile(src_path, tmp)
        tmp.replace(lay.landing / src_path.name)
    if args.paths:
        time.sleep(float(os.environ.get("MLOPS_SETTLE_SECONDS", "1.0")) + 0.1)
    defs = build_definitions(lay)
    store = defs.resources["store"]
    before = {r["quarantined_as"] for r in store.quarantine_reports()}
    with _instance(lay) as instance:
        tick = Runner(defs, instance, lay.io / "sensor_cursors.json").tick("new_data_sensor")
    new_reports = [r for r in store.quarantine_reports() if r["quarantined_as"] not in before]
    accepted = [r for r in tick.runs if r.success]
    for run in accepted:
        record = store.batch_record(run.partition)
        print(f"accepted    {run.tags.get(tags.SOURCE_FILE, run.partition)}: partition {run.partition}, "
              f"{record['rows']} rows, sha256 {record['sha256']}")
    for report in new_reports:
        rejected = BatchRejected(report["file"], report["reason"], report.get("failures", []))
        print(f"quarantined {rejected}\n  (moved to {lay.quarantine / report['quarantined_as']})")
    failed_otherwise = [r for r in tick.runs if not r.success and not r.deduplicated
                        and r.tags.get(tags.SOURCE_FILE) not in {rep["file"] for rep in new_reports}]
    for run in failed_otherwise:
        print(f"failed      {run.tags.get(tags.SOURCE_FILE, run.partition)}: run {run.run_id} failed; "
              "see it in the Dagster UI")
    if not tick.runs and not new_reports:
        print(tick.skip_message or "nothing to ingest")
    return 1 if new_reports or failed_otherwise else 0


def cmd_data(args: argparse.Namespace) -> int:
    lay = settings.layout()
    store = _resources(lay)["store"]
    if args.data_cmd == "versions":
        rows = [{"id": m["id"], "created": m["created"], "batches": len(m["batches"]), "rows": m["rows"],
                 "schema_hash": m["schema_hash"]} for m in store.manifests()]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                print(f"{r['id']}  {r['created']}  {r['batches']:>4} batches  {r['rows']:>9} rows")
        return 0
    if args.data_cmd == "checkout":
        written = store.checkout(args.version, Path(args.dir))
        print(f"wrote {len(written)} batches of dataset {args.version} to {args.dir} (verified by sha256)")
        return 0
    a, b = store.load_manifest(args.a), store.load_manifest(args.b)
    for name, m in ((args.a, a), (args.b, b)):
        if m is None:
            print(f"error: dataset version {name} does not exist (see `mlops data versions`)", file=sys.stderr)
            return 2
    ba = {x["partition"]: x for x in a["batches"]}
    bb = {x["partition"]: x for x in b["batches"]}
    print(f"{args.a} -> {args.b}: rows {a['rows']} -> {b['rows']} ({b['rows'] - a['rows']:+d})")
    for key in sorted(set(bb) - set(ba)):
        print(f"  + {key} ({bb[key]['rows']} rows)")
    for key in sorted(set(ba) - set(bb)):
        print(f"  - {key} ({ba[key]['rows']} rows)")
    for key in sorted(k for k in set(ba) & set(bb) if ba[k]["sha256"] != bb[k]["sha256"]):
        print(f"  ~ {key} (content changed)")
    from mlops_assets.core.features import FeatureProfile

    spec = store.spec()
    summaries = []
    for version in (args.a, args.b):  # streamed: a version of any size is summarised in bounded memory
        profile = FeatureProfile(spec)
        for chunk in store.iter_dataset(version):
            profile.update(chunk)
        summaries.append(profile.table().set_index("column"))
    sa, sb = summaries
    for col in spec.feature_names:
        if spec.feature_kinds[col] == "numeric":
            print(f"  {col:>16}: mean {sa.at[col, 'mean']:.4g} -> {sb.at[col, 'mean']:.4g}, "
                  f"std {sa.at[col, 'std']:.4g} -> {sb.at[col, 'std']:.4g}")
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    from mlops_assets import tags

    tracking = _resources(settings.layout())["tracking"]
    tracking.activate()
    if args.registry_cmd == "list":
        client = tracking.client()
        for v in tracking.versions():
            aliases = ",".join(client.get_model_version(tracking.model_name, v.version).aliases)
            print(f"v{v.version:<4} {aliases:<22} dataset {v.tags.get(tags.LINEAGE_DATASET, '?'):<18} "
                  f"roc_auc {v.tags.get('metric.roc_auc', '?')}  run {v.run_id}")
        return 0
    v = tracking.client().get_model_version(tracking.model_name, args.version)
    print(json.dumps({"name": v.name, "version": v.version, "aliases": list(v.aliases), "run_id": v.run_id,
                      "source": v.source, "description": v.description, "tags": dict(v.tags)}, indent=2))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """Change the registry (what every gateway follows), then tell the running gateway and wait for it."""
    from resources.tracking import NoCanaryError

    res = _resources(settings.layout())
    tracking, gateway = res["tracking"], res["gateway"]
    tracking.activate()
    if args.deploy_cmd == "traffic":
        try:
            canary = tracking.set_canary_percent(args.percent)
        except (ValueError, NoCanaryError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"canary v{canary} now gets {args.percent:g}% of traffic")
        target = f"canary v{canary} at {args.percent:g}%"
        followed = functools.partial(gateway.wait_for_split, canary, args.percent)
    else:
        from_v, to_v = tracking.rollback()
        print(f"champion rolled back: v{from_v} -> v{to_v}")
        target = f"v{to_v}"
        followed = functools.partial(gateway.wait_for_version, to_v)
    if gateway.is_up():
        token = os.environ.get("MLOPS_ADMIN_TOKEN")
        if token and not gateway.reload(token):
            print(f"warning: the gateway at {gateway.url} refused the reload; it follows at its next poll",
                  file=sys.stderr)
        print(f"gateway at {gateway.url} {'serves' if followed() else 'has NOT yet switched to'} {target}")
    return 0


def drift_command(reference: str, current: str, *, as_json: bool = False, html: str | None = None,
                  columns: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Body of ``mlops drift REFERENCE CURRENT``: 0 no drift (or nothing testable), 1 drift, 2 error."""
    from mlops_assets.core.drift import detect_drift, fallback_kind, infer_kinds
    from mlops_assets.core.drift_report import INSUFFICIENT, format_table, render_html
    from mlops_assets.core.table_input import TableInputError, open_table

    try:
        ref_frame, cur_frame = open_table(reference), open_table(current)
        kinds = infer_kinds(ref_frame)
        if columns is None:
            selected = {name: kind for name, kind in kinds.items() if name in cur_frame}
            if not selected:
                raise TableInputError(f"{current}: no testable column in common with {reference}")
        else:
            unknown = [name for name in columns if name not in ref_frame]
            if unknown:
                raise TableInputError(f"{reference}: no column named {', '.join(map(repr, unknown))}")
            selected = {name: kinds.get(name) or fallback_kind(ref_frame[name]) for name in columns}
        report = detect_drift(ref_frame, cur_frame, selected)
        text = json.dumps(report.to_dict(), indent=2) if as_json else format_table(report)
        if html is not None:
            try:
                Path(html).write_text(render_html(report), encoding="utf-8")
            except OSError as exc:
                raise TableInputError(f"{html}: cannot write HTML report ({exc.strerror or exc})") from exc
    except TableInputError as exc:
        print(f"mlops drift: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the CLI promises exit code 2 and a message, never a traceback
        print(f"mlops drift: error comparing {current} with {reference}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 2
    print(text, file=out)
    if report.status == INSUFFICIENT:
        print("mlops drift: warning: no column had enough data to test", file=sys.stderr)
    return 1 if report.dataset_drift else 0


def cmd_drift(args: argparse.Namespace) -> int:
    return drift_command(args.reference, args.current, as_json=args.json, html=args.html)


def cmd_schema(args: argparse.Namespace) -> int:
    from mlops_assets.core.data import raw_schema
    from mlops_assets.core.spec import SpecError, demo_spec, dump_spec, infer_spec, load_spec
    from mlops_assets.core.table_input import TableInputError, read_table

    try:
        if args.schema_cmd == "show":
            spec = load_spec(args.spec) if args.spec else demo_spec()
            schema = raw_schema(spec)
            print(f"schema {schema.name} (strict: no other columns allowed)")
            for name, col in schema.columns.items():
                checks = ", ".join(c.error or c.name for c in col.checks) or "-"
                flags = ("nullable" if col.nullable else "required") + (", unique" if col.unique else "")
                print(f"  {name:<24} {str(col.dtype):<8} {flags:<18} {checks}")
            return 0
        sample = read_table(args.file)
        name = args.name or Path(args.file).name.split(".")[0]
        spec = infer_spec(sample, name=name, target=args.target, task=args.task, id_column=args.id_column,
                          timestamp_column=args.timestamp_column)
    except (TableInputError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = dump_spec(spec)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}: review it, commit it, and point MLOPS_DATASET at it")
    else:
        print(text, end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("simulate", help="write demo batches into the landing zone")
    p.add_argument("--batches", type=int, default=1)
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--drift", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("ingest", help="land files (optional) and ingest what is in the landing zone now")
    p.add_argument("paths", nargs="*")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("data", help="dataset versions: list, diff, checkout")
    dsub = p.add_subparsers(dest="data_cmd", required=True)
    q = dsub.add_parser("versions")
    q.add_argument("--json", action="store_true")
    q = dsub.add_parser("diff")
    q.add_argument("a")
    q.add_argument("b")
    q = dsub.add_parser("checkout")
    q.add_argument("version")
    q.add_argument("dir")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("registry", help="registered model versions")
    rsub = p.add_subparsers(dest="registry_cmd", required=True)
    rsub.add_parser("list")
    q = rsub.add_parser("show")
    q.add_argument("version")
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser("deploy", help="deployment operations")
    dep = p.add_subparsers(dest="deploy_cmd", required=True)
    dep.add_parser("rollback", help="champion back to the previous version")
    q = dep.add_parser("traffic", help="set the running canary's share of traffic")
    q.add_argument("percent", type=float, help="0 to 100")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("schema", help="dataset specs: infer one from a sample, show the schema enforced")
    ssub = p.add_subparsers(dest="schema_cmd", required=True)
    q = ssub.add_parser("infer", help="write a dataset spec inferred from a CSV or Parquet sample")
    q.add_argument("file")
    q.add_argument("--target", required=True, help="the label column")
    q.add_argument("--task", choices=["classification", "regression"])
    q.add_argument("--id-column")
    q.add_argument("--timestamp-column")
    q.add_argument("--name", help="data set name (default: the file's stem)")
    q.add_argument("-o", "--output")
    q = ssub.add_parser("show", help="print the pandera schema a spec enforces on raw batches")
    q.add_argument("spec", nargs="?", help="spec YAML (default: the built-in demo)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("drift", help="drift report of CURRENT against REFERENCE (CSV or Parquet)")
    p.add_argument("reference")
    p.add_argument("current")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html")
    p.set_defaults(func=cmd_drift)
    return parser


def _quiet_library_warnings() -> None:
    """Library notices (beta APIs, pandera serialisation hints) are for developers, not for CLI users."""
    import warnings

    from dagster import BetaWarning, PreviewWarning

    for category in (BetaWarning, PreviewWarning, DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message="Only registered checks may be serialized")
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_library_warnings()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
