"""``mlops labels FILE``: deliver ground truth keyed by the data's own id (the spec's ``id_column``) and say how it
joined: the predictions it reached (online or batch, however old), and the ids that were never predicted."""

import argparse
import json
import sys

from mlops_assets import settings
from mlops_assets.cli._instance import platform_resources


def cmd_labels(args: argparse.Namespace) -> int:
    """0 delivered (unknown ids are reported, not an error), 2 the file could not be delivered."""
    from mlops_assets.core.labels import LabelFileError

    resources = platform_resources(settings.layout())
    spec = resources["store"].spec()
    try:
        joined = resources["prediction_log"].deliver_file(args.file, spec)
    except LabelFileError as exc:
        print(f"mlops labels: error: {exc}", file=sys.stderr)
        return 2
    summary = {"file": args.file, "labels": joined.joined + len(joined.unknown), **joined.summary()}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    days = summary["days"]
    print(f"delivered {summary['labels']} labels by {spec.id_column!r} from {args.file}")
    print(f"joined:  {joined.joined} predictions" + (f" served on {len(days)} day(s), {days[0]} .. {days[-1]}"
                                                      if days else ""))
    print(f"unknown: {len(joined.unknown)} ids never predicted" + (
        f" (e.g. {', '.join(joined.unknown[:5])}); they are kept and join if those ids are scored later"
        if joined.unknown else ""))
    if summary["event_days"]:
        first, last = summary["event_days"][0], summary["event_days"][-1]
        print(f"re-evaluate those event days: mlops monitor run {first} {last} (a file dropped in "
              f"{settings.layout().labels_incoming} instead is delivered and re-evaluated by the labels sensor)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("labels", help="deliver a label file (the spec's id column and target, CSV or Parquet)")
    p.add_argument("file", help="CSV or Parquet with the spec's id_column and target (optional label_timestamp)")
    p.add_argument("--json", action="store_true", help="the delivery report as JSON")
    p.set_defaults(func=cmd_labels)
