"""The image recipe without building it: the lock pins every runtime dependency, the Dockerfile stays
within the legacy builder and runs as non-root, and the build scripts are shellcheck clean."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests import REPO

LOCK = REPO / "scripts" / "image" / "requirements.lock"
DOCKERFILE = REPO / "Dockerfile"


def pinned() -> dict[str, tuple[str, str]]:
    """name → (version, sha256) from the lock."""
    out = {}
    for line in LOCK.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-z0-9-]+)==(\S+) --hash=sha256:([0-9a-f]{64})", line)
        assert match, f"not an exact, hashed pin: {line!r}"
        out[match[1]] = (match[2], match[3])
    return out


def test_lock_pins_every_runtime_dependency_within_pyproject_ranges() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = pinned()
    problems = []
    for dep in deps:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{name} is not in the lock")
        elif not req.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{name}=={pins[name][0]} is outside {req.specifier}")
    assert not problems, "; ".join(problems) + " — run `make image-lock`"
    assert "pip" in pins  # the build stage runs pip from its pinned wheel


def test_dockerfile_is_legacy_builder_syntax_non_root_and_network_free() -> None:
    text = DOCKERFILE.read_text()
    instructions = [line.split()[0] for line in text.splitlines() if line and not line[0].isspace() and line[0] != "#"]
    assert "FROM" in instructions and instructions.count("USER") == 1
    # BuildKit-only syntax fails with the legacy builder this project has (no buildx).
    for buildkit_only in ("--mount=", "<<", "--chmod", "--link", "# syntax="):
        assert buildkit_only not in text, buildkit_only
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    # Nothing in a RUN step may need the network: pip only with --no-index, no apt-get.
    runs = re.findall(r"^RUN (.*?)(?<!\\)$", text, re.MULTILINE | re.DOTALL)
    installs = [run for run in runs if " install " in run]
    assert len(installs) == 2  # the pinned dependencies, then forescale's wheel
    assert all("--no-index" in run for run in installs)
    assert not any("apt-get" in run or "curl" in run for run in runs)
    ignore = [line for line in (REPO / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    assert ignore[0] == "*" and all(line.startswith("!") for line in ignore[1:])  # the context is a whitelist


def test_image_scripts_are_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: apt-get install shellcheck", pytrace=False)
    scripts = sorted((REPO / "scripts" / "image").glob("*.sh")) + sorted((REPO / "scripts" / "ci").glob("*.sh"))
    proc = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
