"""Issue 22, item 7: `make demo` installs the runtime only (about a minute from a fresh clone); the test
toolchain comes with `make install`/`make test`. Read from `make -n` against a venv path that does not exist."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import REPO


def dry_run(target: str, venv: Path) -> str:
    if shutil.which("make") is None:
        pytest.fail("make is not installed (the README's two commands need it)")
    # Under `make test` the outer make's variables would make this one print "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={venv}"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True, env=env,
    )  # fmt: skip
    return done.stdout


def test_make_demo_installs_the_runtime_without_the_test_toolchain(tmp_path: Path) -> None:
    commands = dry_run("demo", tmp_path / "venv")
    assert "pip install -q -e ." in commands
    assert "[dev]" not in commands
    assert commands.strip().endswith("forescale demo")


def test_make_install_adds_the_test_toolchain(tmp_path: Path) -> None:
    commands = dry_run("install", tmp_path / "venv")
    assert "pip install -q -e '.[dev]'" in commands


def test_ci_setup_installs_the_toolchain_into_a_demo_venv() -> None:
    """A venv made by `make demo` has forescale but not pytest: setup.sh keys on .venv/.dev, not the script."""
    setup = (REPO / "scripts" / "ci" / "setup.sh").read_text(encoding="utf-8")
    assert "[ ! -f .venv/.dev ]" in setup and "touch .venv/bin/forescale .venv/.dev" in setup
