"""The deployable image built by `make image` (scripts/image/build.sh): it runs with no network, as a
non-root user, checks the example config, forecasts, plots, and carries nothing of the build host.

scripts/ci/test.sh builds the image before pytest and records its ID in .run/image-id; these tests run
exactly that image (by ID, so a parallel build in another checkout cannot swap it).
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from autoscaler import __version__
from tests import REPO
from tests.conftest import require_service

IMAGE_ID_FILE = REPO / ".run" / "image-id"


@pytest.fixture(scope="module")
def image(docker_env: dict[str, str]) -> str:
    image_id = IMAGE_ID_FILE.read_text().strip() if IMAGE_ID_FILE.exists() else ""
    if not image_id:
        require_service("docker", "the forescale image is not built: run `make image` (scripts/ci/test.sh does)")
    found = subprocess.run(["docker", "image", "inspect", image_id], env=docker_env, capture_output=True)
    if found.returncode != 0:
        require_service("docker", f"image {image_id} from .run/image-id is gone: run `make image`")
    return image_id


def run(
    env: dict[str, str], image: str, *args: str, volumes: dict[Path, str] | None = None, entrypoint: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker run --rm --network none`` (the image must work without any network)."""
    cmd = ["docker", "run", "--rm", "--network", "none"]
    for host, container in (volumes or {}).items():
        cmd += ["-v", f"{host}:{container}"]
    if entrypoint:
        cmd += ["--entrypoint", entrypoint]
    return subprocess.run([*cmd, image, *args], env=env, capture_output=True, text=True, timeout=300)


def test_version_and_help_without_network(docker_env: dict[str, str], image: str) -> None:
    version = run(docker_env, image, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"forescale {__version__}"
    default = run(docker_env, image)  # CMD ["--help"]
    assert default.returncode == 0, default.stderr
    assert "Predictive autoscaler" in " ".join(default.stdout.split()) and "render" in default.stdout


def test_image_metadata_non_root_entrypoint_and_labels(docker_env: dict[str, str], image: str) -> None:
    (info,) = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", image], env=docker_env, capture_output=True, text=True, check=True
        ).stdout
    )
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["forescale"]
    assert config["WorkingDir"] == "/var/lib/forescale"
    assert "9464/tcp" in config["ExposedPorts"]
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    ident = run(docker_env, image, "-c", "id -u; id -g; touch /var/lib/forescale/x && echo writable", entrypoint="sh")
    assert ident.stdout.split() == ["10001", "10001", "writable"], ident.stderr


def test_config_check_on_the_example(docker_env: dict[str, str], image: str) -> None:
    """The README's example config, mounted read-only, is valid inside the image (schedule rules included)."""
    volumes = {
        REPO / "forescale.example.yaml": "/cfg/forescale.yaml:ro",
        REPO / "overrides" / "schedule.yaml": "/cfg/overrides/schedule.yaml:ro",
        REPO / "nomad.hcl": "/cfg/nomad.hcl:ro",
    }
    ok = run(docker_env, image, "config", "check", "/cfg/forescale.yaml", volumes=volumes)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "is valid" in " ".join(ok.stdout.split()) and "ocr" in ok.stdout  # (may be wrapped)


def test_config_check_reports_a_broken_config_with_file_and_key(
    docker_env: dict[str, str], image: str, tmp_path: Path
) -> None:
    bad = tmp_path / "forescale.yaml"
    bad.write_text("pools:\n  - name: ocr\n    query: up\n    nomad: {job: a, group: b}\n    capacity_per_node: -1\n")
    bad.chmod(0o644)
    result = run(docker_env, image, "config", "check", "/cfg/forescale.yaml", volumes={bad: "/cfg/forescale.yaml:ro"})
    assert result.returncode != 0
    out = "".join((result.stdout + result.stderr).split())  # (may be wrapped)
    assert "/cfg/forescale.yaml" in out and "capacity_per_node" in out


def test_forecasting_and_plotting_work_in_the_slimmed_image(
    docker_env: dict[str, str], image: str, tmp_path: Path
) -> None:
    """The image drops scipy/scikit-learn/matplotlib test suites: the demo (scikit-learn) and a backtest
    with --plot (matplotlib) must still run there."""
    demo = run(docker_env, image, "demo", "--days", "0.5", "--pace", "0")
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "scale actions" in demo.stdout
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # written by uid 10001
    nine_days = (REPO / "data" / "nasa_http_1995_jul_5min.csv").read_text().splitlines()[: 1 + 9 * 288]
    (out / "trace.csv").write_text("\n".join(nine_days) + "\n")
    backtest = run(
        docker_env,
        image,
        *("backtest", "--trace", "/out/trace.csv", "--capacity-per-node", "2", "--json", "--plot", "/out/bt.png"),
        volumes={out: "/out"},
    )
    assert backtest.returncode == 0, backtest.stdout[-2000:] + backtest.stderr[-3000:]
    assert json.loads(backtest.stdout)["policies"]["forescale"]["scale_actions"] > 0
    png = out / "bt.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def image_files(env: dict[str, str], image: str, wanted: set[str]) -> dict[str, bytes]:
    """Contents of ``wanted`` paths (e.g. ``etc/hostname``) in the image's layers, read from `docker save`
    (a container would show Docker's own mounts at those paths, not the image's files)."""
    found: dict[str, bytes] = {}
    order: list[str] = []
    layers: dict[str, dict[str, bytes]] = {}
    with subprocess.Popen(["docker", "save", image], env=env, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as outer:
            for member in outer:
                data = outer.extractfile(member)
                if data is None:
                    continue
                if member.name.endswith("layer.tar"):
                    files: dict[str, bytes] = {}
                    with tarfile.open(fileobj=data, mode="r|") as layer:
                        for entry in layer:
                            name = entry.name.removeprefix("./")
                            if name in wanted and entry.isfile():
                                content = layer.extractfile(entry)
                                files[name] = content.read() if content else b""
                    layers[member.name.split("/")[0]] = files
                elif member.name == "manifest.json":
                    order = [p.split("/")[0] for p in json.loads(data.read())[0]["Layers"]]
    for layer_id in order:  # lower layers first: later ones override
        found.update(layers.get(layer_id, {}))
    return found


def test_nothing_of_the_build_host_or_the_build_tools_ships(docker_env: dict[str, str], image: str) -> None:
    """debootstrap copies the host's resolv.conf and hostname: the base blanks them; no pip, no wheelhouse."""
    files = image_files(docker_env, image, {"etc/resolv.conf", "etc/hostname"})
    assert files == {"etc/resolv.conf": b"", "etc/hostname": b"localhost\n"}
    probe = run(
        docker_env,
        image,
        "-c",
        "import importlib.util as u, os; print(u.find_spec('pip') is None, os.path.exists('/tmp/wheelhouse'))",
        entrypoint="python3",
    )
    assert probe.stdout.split() == ["True", "False"], probe.stderr
