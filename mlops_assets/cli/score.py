"""``mlops score FILE``: score a file in batch now, in this process, without Dagster (the same logic as the
``batch_predictions`` asset, for speed at the terminal); the rows enter the prediction log with slot ``batch``."""

import argparse
import sys
from pathlib import Path

from mlops_assets import settings
from mlops_assets.cli._instance import model_registry


def cmd_score(args: argparse.Namespace) -> int:
    from mlops_assets.core import ingestion, scoring
    from mlops_assets.core.spec import SpecError, demo_spec, load_spec
    from mlops_assets.core.validation import BatchRejected

    lay = settings.layout()
    path = Path(args.file)
    if not path.is_file():
        print(f"error: {args.file} is not a file", file=sys.stderr)
        return 2
    try:
        batch_id = ingestion.partition_key_for(path)
        spec = load_spec(settings.dataset_spec_path()) if settings.dataset_spec_path() else demo_spec()
        version, predictor = scoring.choose_model(model_registry(lay), args.version)
    except (BatchRejected, SpecError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else lay.scoring_output / f"{batch_id}.parquet"
    chosen = "pinned" if args.version else "champion"
    print(f"scoring {path.name} as batch {batch_id} with model v{version} ({chosen}) ...", flush=True)
    try:
        with scoring.log_writer(settings.prediction_log_url(lay)) as log:
            result = scoring.score_file(path, spec, predictor, model_name=settings.model_name(),
                                        model_version=version, batch_id=batch_id, output=output,
                                        report_dir=lay.scoring_reports, log=log,
                                        chunk_rows=args.chunk_rows or scoring.DEFAULT_CHUNK_ROWS)
    except scoring.ScoringRejected as rejected:
        print(f"not scored: {rejected}", file=sys.stderr)
        print(f"report: {rejected.report_path}", file=sys.stderr)
        return 1
    print(f"scored   {result.scored} of {result.rows} rows -> {result.output}")
    if result.rejected:
        print(f"rejected {result.rejected} row(s), not scored: report {result.report} (the rows: "
              f"{lay.scoring_reports / f'{batch_id}.rejected.csv'})")
        for failure in result.failures:
            print(f"  - {failure['column']}: {failure['rule']} in {failure['count']} row(s)")
    else:
        print("rejected 0 rows")
    if result.ignored_columns:
        print(f"ignored columns (not model inputs): {', '.join(result.ignored_columns)}")
    print(f"logged   {result.scored} rows in {result.log_lines} prediction line(s), slot batch, request ids "
          f"{batch_id}:0..{result.log_lines - 1}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score a CSV or Parquet file in batch with the champion (or --version)")
    p.add_argument("file", help="inputs: the data set's columns without the target")
    p.add_argument("--version", help="a registered model version to score with (default: the champion)")
    p.add_argument("-o", "--output", help="the scored Parquet (default: $MLOPS_HOME/scoring/output/<file>.parquet)")
    p.add_argument("--chunk-rows", type=int, help="rows read and scored at a time (default 65,536)")
    p.set_defaults(func=cmd_score)
