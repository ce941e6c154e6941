"""``mlops monitor``: ``show DAY`` prints a day's monitoring result (drift per column, live metrics with their
intervals and label coverage, the decay verdicts and why, for the day and the chunk ending with it) as the
monitoring assets recorded it; ``run FROM_DAY TO_DAY`` computes every monitoring asset for a range of event days
in ONE run on the platform's own Dagster instance and prints a line per day."""

import argparse
import json
import sys
from datetime import date

from mlops_assets import settings
from mlops_assets.cli._instance import embedded_instance, platform_resources

ASSETS = ("drift_report", "live_performance", "estimated_performance")


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        print(f"error: {text!r} is not a day; use YYYY-MM-DD", file=sys.stderr)
        return None


def _records(records, day: str) -> dict:
    return {asset: records.latest_record(asset, day) for asset in ASSETS}


def cmd_monitor_show(args: argparse.Namespace) -> int:
    from mlops_assets.core.estimation import estimate_lines
    from mlops_assets.core.monitoring_report import day_lines, window_summary

    day = _day(args.day)
    if day is None:
        return 2
    found = _records(platform_resources(settings.layout())["records"], day.isoformat())
    drift, live, estimated = found["drift_report"], found["live_performance"], found["estimated_performance"]
    if args.json:
        summary = window_summary(drift, live, estimated)
        print(json.dumps({"day": day.isoformat(), **found, "estimated": estimated, **summary}, indent=2, default=str))
    else:
        print("\n".join(day_lines(day.isoformat(), drift, live) + estimate_lines(estimated)))
    if drift is None and live is None:
        print(f"nothing computed for {day} yet: the drift sensor does it as traffic arrives, or run "
              f"`mlops monitor run {day} {day}`", file=sys.stderr)
        return 1
    return 0


def _summary_line(day: str, drift: dict | None, live: dict | None) -> str:
    def verdict(window: dict | None, key: str) -> str:
        return "-" if window is None or window.get(key) is None else ("YES" if window[key] else "no")

    parts = [day]
    if live:
        chunk = live.get("chunk") or {}
        parts.append(f"{live['metric']} {live['value']:.4f} on {live['labeled_rows']} labelled"
                     if live["labeled_rows"] else "no labels")
        parts.append(f"coverage {live['label_coverage']['text'].split(' of the')[0]}"
                     if live.get("label_coverage") else "")
        parts.append(f"decayed day {verdict(live, 'window_decayed')} chunk {verdict(chunk, 'window_decayed')} "
                     f"({chunk.get('rows', 0)} rows)")
    if drift:
        parts.append(f"drift day {verdict(drift, 'dataset_drift')} chunk {verdict(drift.get('chunk'), 'dataset_drift')}"
                     + (f" ({drift['detail']})" if drift.get("detail") else ""))
    return "  ".join(p for p in parts if p)


def cmd_monitor_run(args: argparse.Namespace) -> int:
    from mlops_assets.core.contracts import RUN_KIND, TRIGGER, RunKind, Trigger
    from mlops_assets.definitions import build_definitions
    from mlops_assets.headless.monitoring import run_monitoring

    first, last = _day(args.from_day), _day(args.to_day)
    if first is None or last is None:
        return 2
    if last < first:
        print(f"error: {last} is before {first}; give FROM_DAY then TO_DAY", file=sys.stderr)
        return 2
    window = {k: v for k, v in (("chunk_rows", args.chunk_rows), ("chunk_days", args.chunk_days)) if v is not None}
    live = window | ({"tolerance": args.tolerance} if args.tolerance is not None else {})
    # One window and one tolerance for all three: the estimate is judged on the rows live_performance judges.
    ops = {"drift_report": {"config": window}, "live_performance": {"config": live},
           "estimated_performance": {"config": live}}
    lay = settings.layout()
    defs = build_definitions(lay)
    days = (last - first).days + 1
    print(f"monitoring_job over {days} event day(s) {first} .. {last}, as one run ...", flush=True)
    with embedded_instance(lay) as instance:
        outcome = run_monitoring(defs, instance, first, last, ops=ops,
                                 tags={TRIGGER: Trigger.MANUAL, RUN_KIND: RunKind.MONITORING})
    if outcome.error:
        print(f"error: {outcome.error}", file=sys.stderr)
        return 2 if outcome.run_id is None else 1
    records = defs.resources["records"]
    for key in outcome.days:
        found = _records(records, key)
        print(_summary_line(key, found["drift_report"], found["live_performance"]))
    print(f"run {outcome.run_id}: {'succeeded' if outcome.success else 'FAILED'}; see it in the Dagster UI "
          "(`mlops up`), a day in full with `mlops monitor show DAY`")
    for error in outcome.errors:
        print(f"error: {error}", file=sys.stderr)
    return 0 if outcome.success else 1


def register(sub: argparse._SubParsersAction) -> None:
    monitor = sub.add_parser("monitor", help="monitoring results").add_subparsers(dest="monitor_cmd", required=True)
    p = monitor.add_parser("show", help="a day's drift, live performance and decay verdict")
    p.add_argument("day", help="YYYY-MM-DD (UTC event day)")
    p.add_argument("--json", action="store_true", help="the stored records and the per-window summary as JSON")
    p.set_defaults(func=cmd_monitor_show)
    p = monitor.add_parser("run", help="compute every monitoring asset for a range of event days in one run, "
                                       "wait, and print a line per day")
    p.add_argument("from_day", metavar="FROM_DAY", help="YYYY-MM-DD (UTC event day), first day of the range")
    p.add_argument("to_day", metavar="TO_DAY", help="YYYY-MM-DD (UTC event day), last day of the range")
    p.add_argument("--chunk-rows", type=int, help="each day's chunk: the last N rows by event time (default 5000)")
    p.add_argument("--chunk-days", type=int, help="or: each day's chunk is this many event days ending with it")
    p.add_argument("--tolerance", type=float,
                   help="how far below the offline metric live (and estimated) performance may fall before it "
                        "is decay (0.02)")
    p.set_defaults(func=cmd_monitor_run)
