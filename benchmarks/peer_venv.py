"""The peers' venvs (Evidently for ``drift.py``, NannyML for ``estimation.py``): their pins clash with the
project's, so each peer runs in a venv of its own next to the benchmark, made on first use from its pinned
requirements file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def peer_python(venv: Path, requirements: Path) -> Path:
    """The venv's interpreter, creating the venv from the pinned requirements when missing."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    print(f"creating {venv} from {requirements.name} (one-off)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (venv / ".gitignore").write_text("*\n")  # keep the venv out of git wherever it is created
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True)
    return python
