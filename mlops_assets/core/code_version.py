"""The code version every run records: the package version and, when available, the git commit."""

from __future__ import annotations

import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mlops_assets import settings


@cache
def git_commit() -> str | None:
    """The commit of the checkout the code runs from (``MLOPS_GIT_COMMIT`` wins, e.g. in an image)."""
    env = settings.git_commit_override()
    if env:
        return env
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


@cache
def package_version() -> str:
    try:
        return version("mlops-assets")
    except PackageNotFoundError:
        return "0+unknown"


def code_version() -> str:
    commit = git_commit()
    return f"{package_version()}+{commit[:12]}" if commit else package_version()
