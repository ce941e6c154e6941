"""``mlops schema``: infer a dataset spec from a sample, or show the schema a spec enforces on raw batches."""

import argparse
import sys
from pathlib import Path


def cmd_schema(args: argparse.Namespace) -> int:
    from mlops_assets.core.spec import SpecError, demo_spec, dump_spec, infer_spec, infer_task, load_spec
    from mlops_assets.core.table_input import TableInputError, read_table
    from mlops_assets.core.validation import raw_schema

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
        samples = [read_table(f) for f in args.files]
        name = args.name or Path(args.files[0]).name.split(".")[0]
        spec = infer_spec(samples, name=name, target=args.target, task=args.task, id_column=args.id_column,
                          timestamp_column=args.timestamp_column)
    except (TableInputError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # What was inferred and why goes to stderr, so that the spec alone can be piped from stdout.
    if args.task:
        print(f"task: {spec.task} (set by --task)", file=sys.stderr)
    else:
        import pandas as pd

        other = "regression" if spec.task == "classification" else "classification"
        why = infer_task(pd.concat([s[args.target] for s in samples], ignore_index=True))[1]
        print(f"task: {spec.task}, inferred: {why}; if that is wrong, run again with --task {other}",
              file=sys.stderr)
    tails = [c.name for c in spec.categorical if c.unseen == "accept"]
    if tails:
        print(f"columns with many categories accept unseen values (counted per batch, up to a share): "
              f"{', '.join(tails)}", file=sys.stderr)
    text = dump_spec(spec)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}: review it, commit it, and point MLOPS_DATASET at it")
    else:
        print(text, end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="dataset specs: infer one from a sample, show the schema enforced")
    ssub = p.add_subparsers(dest="schema_cmd", required=True)
    q = ssub.add_parser("infer", help="write a dataset spec inferred from CSV or Parquet samples")
    q.add_argument("files", nargs="+", metavar="file", help="one or more samples, read together")
    q.add_argument("--target", required=True, help="the label column")
    q.add_argument("--task", choices=["classification", "regression"],
                   help="override the task inferred from the target's values")
    q.add_argument("--id-column")
    q.add_argument("--timestamp-column")
    q.add_argument("--name", help="data set name (default: the first file's stem)")
    q.add_argument("-o", "--output")
    q = ssub.add_parser("show", help="print the pandera schema a spec enforces on raw batches")
    q.add_argument("spec", nargs="?", help="spec YAML (default: the built-in demo)")
    p.set_defaults(func=cmd_schema)
