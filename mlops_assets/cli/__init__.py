"""The ``mlops`` command: the platform headless, from a terminal or a CI job."""

import argparse

from mlops_assets.cli import data, drift, labels, monitor, platform, registry, schema, score, train

# The order of the commands in ``mlops --help``.
COMMAND_GROUPS = (platform, data, train, score, registry, monitor, labels, schema, drift)


STACK = ("dagster", "dagster-webserver", "dagster-mlflow", "mlflow", "scikit-learn", "pandera", "scipy", "pandas")


def versions() -> str:
    """The platform's version and the stack it runs on, read from package metadata (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"mlops-assets {of('mlops-assets')} (" + ", ".join(f"{name} {of(name)}" for name in STACK) + ")"


class _PrintVersions(argparse.Action):
    """``--version``, with the versions read only when asked for (every other command starts without it)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(versions())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """Each command module adds its own sub-commands; their heavy imports wait until one of them runs."""
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__)
    parser.add_argument("--version", action=_PrintVersions, help="the platform's and its stack's versions")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def _quiet_library_warnings() -> None:
    """Library notices (beta APIs, pandera serialisation hints) are for developers, not for CLI users.

    Dagster's beta and preview notices are matched by their words, not their classes, so that the commands which
    never touch Dagster (listings) do not import it just to silence it.
    """
    import warnings

    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    warnings.filterwarnings("ignore", message="Only registered checks may be serialized")
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")


def _quiet_library_logs() -> None:
    """MLflow announces store migrations and registrations at INFO; the CLI prints the platform's own lines."""
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_library_warnings()
    _quiet_library_logs()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
