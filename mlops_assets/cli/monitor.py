"""``mlops monitor show DAY``: a day's monitoring result from the terminal (drift per column, live metrics
with their intervals, the decay verdict and why), as the monitoring assets recorded it."""

import argparse
import json
import sys
from datetime import date

from mlops_assets import settings
from mlops_assets.cli._instance import platform_resources


def cmd_monitor_show(args: argparse.Namespace) -> int:
    from mlops_assets.core.estimation import estimate_lines
    from mlops_assets.core.monitoring_report import day_lines

    try:
        day = date.fromisoformat(args.day).isoformat()
    except ValueError:
        print(f"error: {args.day!r} is not a day; use YYYY-MM-DD", file=sys.stderr)
        return 2
    records = platform_resources(settings.layout())["records"]
    drift, live = records.latest_record("drift_report", day), records.latest_record("live_performance", day)
    estimated = records.latest_record("estimated_performance", day)
    if args.json:
        print(json.dumps({"day": day, "drift_report": drift, "live_performance": live, "estimated": estimated},
                         indent=2, default=str))
    else:
        print("\n".join(day_lines(day, drift, live) + estimate_lines(estimated)))
    if drift is None and live is None:
        print(f"nothing computed for {day} yet: the drift sensor does it as traffic arrives, or materialize "
              "`monitoring_job` for that day (README: Backfills)", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    monitor = sub.add_parser("monitor", help="monitoring results").add_subparsers(dest="monitor_cmd", required=True)
    p = monitor.add_parser("show", help="a day's drift, live performance and decay verdict")
    p.add_argument("day", help="YYYY-MM-DD (UTC)")
    p.add_argument("--json", action="store_true", help="the stored records as JSON")
    p.set_defaults(func=cmd_monitor_show)
