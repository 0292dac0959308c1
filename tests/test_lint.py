"""The Python code passes the repository's linter: ruff with ruff.toml (pyflakes, pycodestyle,
flake8-bugbear, unused `# noqa` markers; line length 120)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["src", "tests", "scripts", "benchmarks", "launch", "config"]


def ruff() -> list[str]:
    """The ruff of this venv (requirements.txt), else one on PATH; skip when there is none."""
    exe = Path(sys.executable).with_name("ruff")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("ruff")
    if found is None:
        pytest.skip("ruff not installed (pip install -r requirements.txt)")
    return [found]


def test_ruff_finds_nothing():
    out = subprocess.run([*ruff(), "check", "--no-cache", "--output-format", "concise", *PATHS], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, (f"ruff check {' '.join(PATHS)} (fix these; [*]: ruff check --fix):\n"
                                 f"{out.stdout}{out.stderr}")


def test_ruff_reports_a_finding(tmp_path):
    """The check can fail: the same configuration flags an unused import and an unused noqa."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nx = 1  # noqa: E501\n")
    out = subprocess.run([*ruff(), "check", "--no-cache", "--config", str(ROOT / "ruff.toml"), str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "F401" in out.stdout and "RUF100" in out.stdout, out.stdout + out.stderr
