"""``mlops drift``: a drift report of one CSV or Parquet file against another, exit code by verdict."""

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO


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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("drift", help="drift report of CURRENT against REFERENCE (CSV or Parquet)")
    p.add_argument("reference")
    p.add_argument("current")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html")
    p.set_defaults(func=cmd_drift)
