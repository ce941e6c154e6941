"""``mlops simulate``, ``mlops ingest``, ``mlops data``: batches into the landing zone, and dataset versions."""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from mlops_assets import settings
from mlops_assets.cli._instance import dataset_manifests, embedded_instance, platform_resources


def cmd_simulate(args: argparse.Namespace) -> int:
    from mlops_assets.core.demo import write_batches

    lay = settings.layout()
    written = write_batches(lay.landing, batches=args.batches, rows=args.rows, drift=args.drift, seed=args.seed)
    for path in written:
        print(path)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from mlops_assets.core.datasets import ingest_report
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
        time.sleep(settings.settle_seconds() + 0.1)
    defs = build_definitions(lay)
    store = defs.resources["store"]
    before = {r["quarantined_as"] for r in store.quarantine_reports()}
    with embedded_instance(lay) as instance:
        # Dagster's own event log (and the stack trace of an expected rejection) stays in the instance, for the
        # UI; the terminal gets the platform's lines below.
        tick = Runner(defs, instance, lay.io / "sensor_cursors.json", log_level="CRITICAL").tick("new_data_sensor")
    new_reports = [r for r in store.quarantine_reports() if r["quarantined_as"] not in before]
    report = ingest_report(tick.runs, new_reports, store.batch_record, lay.quarantine, tick.skip_message,
                           landed=[Path(src).name for src in args.paths])
    for line in report.lines:
        print(line)
    return 1 if report.failed else 0


def cmd_data(args: argparse.Namespace) -> int:
    lay = settings.layout()
    if args.data_cmd == "versions":
        rows = [{"id": m["id"], "created": m["created"], "batches": len(m["batches"]), "rows": m["rows"],
                 "spec": m["spec"], "schema_hash": m["schema_hash"], "left_out": m.get("left_out", []),
                 "superseded_rows": sum(x["rows"] for x in m.get("superseded", []))} for m in dataset_manifests(lay)]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                print(f"{r['id']}  {r['created']}  {r['batches']:>4} batches  {r['rows']:>9} rows  "
                      f"spec {r['spec']} ({r['schema_hash']})  {len(r['left_out'])} left out")
                if r["left_out"]:  # the listing stays free of pandas unless there is something to explain
                    from mlops_assets.core.versions import left_out_lines

                    for line in left_out_lines(r["left_out"]):
                        print(f"    left out {line}")
        return 0
    store = platform_resources(lay)["store"]
    if args.data_cmd == "checkout":
        written = store.checkout(args.version, Path(args.dir))
        print(f"wrote {len(written)} batches of dataset {args.version} to {args.dir} (verified by sha256)")
        return 0
    from mlops_assets.core.datasets import feature_shift, feature_summary, manifest_diff

    a, b = store.load_manifest(args.a), store.load_manifest(args.b)
    for name, m in ((args.a, a), (args.b, b)):
        if m is None:
            print(f"error: dataset version {name} does not exist (see `mlops data versions`)", file=sys.stderr)
            return 2
    for line in manifest_diff(args.a, a, args.b, b):
        print(line)
    spec = store.spec()
    before, after = (feature_summary(spec, store.iter_dataset(version)) for version in (args.a, args.b))
    for line in feature_shift(spec, before, after):
        print(line)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
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
