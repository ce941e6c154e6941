"""``mlops schema``: infer a dataset spec from a sample, or show the schema a spec enforces on raw batches."""

import argparse
import sys
from pathlib import Path


def cmd_schema(args: argparse.Namespace) -> int:
    from mlops_assets.core.spec import SpecError, demo_spec, dump_spec, infer_spec, load_spec
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


def register(sub: argparse._SubParsersAction) -> None:
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
