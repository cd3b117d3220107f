"""The project's own lint tools on the code: the entrypoint is ruff/mypy clean, and the import layers hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests import REPO

ENTRYPOINT = REPO / "scripts" / "forescale-compose-entrypoint"
VENV_BIN = Path(sys.executable).parent


def test_entrypoint_is_ruff_and_mypy_clean() -> None:
    """`ruff check .` skips files without .py; check the entrypoint explicitly."""
    ruff = subprocess.run([str(VENV_BIN / "ruff"), "check", str(ENTRYPOINT)], capture_output=True, text=True)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    mypy = subprocess.run(
        [str(VENV_BIN / "mypy"), "--strict", "--ignore-missing-imports", str(ENTRYPOINT)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr



def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter with the project's contracts, on the packages found first on PYTHONPATH=root."""
    return subprocess.run(
        [str(VENV_BIN / "lint-imports"), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PATH": str(VENV_BIN), "PYTHONPATH": str(root), "HOME": str(root)},
        timeout=120,
    )


def test_layers_hold_and_an_upward_import_breaks_them(tmp_path: Path) -> None:
    for package in ("autoscaler", "overrides", "predictor"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    kept = _lint_imports(tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "2 kept, 0 broken" in kept.stdout
    # The policy reaching up into an adapter (the tick importing the Slack notifier) must fail CI.
    tick = tmp_path / "autoscaler" / "policy" / "tick.py"
    tick.write_text(tick.read_text() + "\nimport autoscaler.notify.slack.notifier  # noqa\n")
    broken = _lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "autoscaler.policy is not allowed to import autoscaler.notify" in broken.stdout
    assert "autoscaler.policy.tick -> autoscaler.notify.slack.notifier" in broken.stdout
