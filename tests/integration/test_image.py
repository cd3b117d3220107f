"""The deployable image built by `make image` (scripts/image/build.sh): it runs with no network, as a
non-root user, checks the example config, forecasts, plots, and carries nothing of the build host; and the
job `render --self` writes runs in it as is.

scripts/ci/test.sh builds the image before pytest and records its ID in .run/image-id; these tests run
exactly that image (by ID, so a parallel build in another checkout cannot swap it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from autoscaler import __version__
from autoscaler.config import load_config
from autoscaler.jobspec.selfjob import SELF_IMAGE, SelfJob, render_self
from tests import REPO
from tests.conftest import require_service
from tests.fakes.nomad import FakeNomad
from tests.fixtures.prometheus import NASA_QUERY, nasa_series_ending_now
from tests.fixtures.prometheus_server import running_prometheus
from tests.helpers import free_port, http_get
from tests.unit.jobspec.test_render import groups_of, hcl_unescape, heredoc_data, job_of, parse_hcl, tasks_of

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
    """The image drops matplotlib's test suite and has no scipy or scikit-learn: the demo (forecasts) and a
    backtest with --plot (matplotlib) must still run there."""
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


# ---------------------------------------------------------------- the rendered self job, run as Nomad would


def secrets_env(template_data: str, variable: dict[str, str]) -> dict[str, str]:
    """What Nomad makes of the job's env template: ``{{ if .K }}K={{ .K | toJSON }}{{ end }}`` lines evaluated
    against the Variable's items, then read as KEY="json" env lines."""
    env = {}
    for key in re.findall(r"\{\{ if \.(\w+) \}\}\1=\{\{ \.\1 \| toJSON \}\}\{\{ end \}\}", template_data):
        if key in variable:
            env[key] = json.loads(json.dumps(variable[key]))
    return env


def test_the_rendered_self_job_runs_as_is_in_the_image(
    docker_env: dict[str, str], image: str, tmp_path: Path, fake_nomad: FakeNomad
) -> None:
    """render --self → the job's files where Nomad puts them (/local, /alloc, env from the Variable) → the
    image with the job's own args. The daemon inside reaches Prometheus and Nomad by name (host network,
    names mapped to loopback), reads the operator's override from Nomad Variables and scales with the token."""
    token = "7f1e2d3c-0000-4000-8000-forescale-job"
    fake_nomad.enable_acl("management-secret")
    fake_nomad.add_token(
        token,
        jobs={"default": ["read-job", "read-job-scaling", "scale-job"]},
        variables={"default": ["read", "write", "list", "destroy"]},
    )
    fake_nomad.add_job("ml-web", groups={"workers": 2}, scaling={"workers": (1, 40)})
    nomad_port = int(fake_nomad.address.rsplit(":", 1)[1])
    with running_prometheus(nasa_series_ending_now(), tmp_path / "prometheus") as prom:
        prom_port = int(prom.url.rsplit(":", 1)[1])
        laptop = tmp_path / "laptop"
        laptop.mkdir()
        (laptop / "schedule.yaml").write_text(
            "timezone: UTC\nrules:\n  - {name: floor, pool: web, days: daily, window: '00:00-23:59', min: 3}\n"
        )
        config = {
            "prometheus": {"url": f"http://prometheus.test:{prom_port}"},
            "nomad": {"address": f"http://nomad.test:{nomad_port}", "retries": 0},
            "overrides": {"store": "nomad", "schedule_file": "schedule.yaml"},
            "daemon": {"interval": "1h"},
            "pools": [
                {
                    "name": "web",
                    "query": NASA_QUERY,
                    "nomad": {"job": "ml-web", "group": "workers"},
                    "capacity_per_node": 0.05,
                    "min": 1,
                    "max": 40,
                }
            ],
        }
        (laptop / "forescale.yaml").write_text(yaml.safe_dump(config))
        metrics_port = free_port()
        hcl = render_self(load_config(laptop / "forescale.yaml"), SelfJob(metrics_port=metrics_port))
        # The operator's override, set from the laptop through Nomad Variables (its own admin token).
        laptop_cfg = dict(config, nomad={"address": fake_nomad.address, "token_env": "ADMIN_TOKEN"})
        (laptop / "admin.yaml").write_text(yaml.safe_dump(laptop_cfg))
        (laptop / "schedule.yaml").chmod(0o644)
        pinned = subprocess.run(
            [
                sys.executable,
                "-m",
                "autoscaler",
                "override",
                "set",
                "web",
                "--pin",
                "9",
                "--for",
                "1h",
                "-r",
                "launch",
                "-c",
                str(laptop / "admin.yaml"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ADMIN_TOKEN": "management-secret"},
        )
        assert pinned.returncode == 0, pinned.stdout + pinned.stderr

        task = tasks_of(groups_of(job_of(parse_hcl(hcl))[1])["forescale"])["forescale"]
        assert task["config"][0]["image"] == SELF_IMAGE  # what `make image` tags; we run it by ID
        alloc = tmp_path / "alloc"
        (alloc / "data").mkdir(parents=True)
        (alloc / "data").chmod(0o777)  # the sticky disk, written by the image's uid 10001
        local = tmp_path / "local"
        local.mkdir()
        env: dict[str, str] = {}
        for tpl in task["template"]:
            if tpl.get("env"):  # the Variable lookup, evaluated as consul-template would
                env.update(secrets_env(hcl_unescape(tpl["data"]), {"NOMAD_TOKEN": token}))
            else:
                (tmp_path / tpl["destination"]).write_text(heredoc_data(tpl["data"]))
        assert env == {"NOMAD_TOKEN": token}
        args = task["config"][0]["args"]
        assert args == ["run", "--config", "/local/forescale.yaml"]
        name = f"forescale-selfjob-{metrics_port}"
        cmd = [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "--add-host",
            "nomad.test:127.0.0.1",
            "--add-host",
            "prometheus.test:127.0.0.1",
            "-v",
            f"{local}:/local:ro",
            "-v",
            f"{alloc}:/alloc",
            *(f"-e{k}={v}" for k, v in env.items()),
            image,
            *args,
        ]
        subprocess.run(cmd, env=docker_env, check=True, capture_output=True, timeout=60)
        try:
            deadline = time.monotonic() + 120
            while fake_nomad.group_count("ml-web", "workers") != 9:
                running = subprocess.run(
                    ["docker", "inspect", "-f", "{{.State.Running}}", name],
                    env=docker_env,
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                logs = subprocess.run(["docker", "logs", name], env=docker_env, capture_output=True, text=True)
                assert running == "true", logs.stdout + logs.stderr
                assert time.monotonic() < deadline, "the job never scaled ml-web to the pin:\n" + logs.stderr[-3000:]
                threading.Event().wait(0.5)
            # The scale lands in Nomad a moment before the tick's recorder updates /healthz: wait for it (bounded).
            while True:
                status, body = http_get(f"http://127.0.0.1:{metrics_port}/healthz")
                health = json.loads(body)
                if "web" in health.get("pools", {}) or time.monotonic() > deadline:
                    break
                threading.Event().wait(0.2)
            assert status == 200 and health["pools"]["web"]["status"] == "applied", body
            assert health["role"] == "leader" and fake_nomad.variable("forescale/leader") is not None  # the lock
            scale = fake_nomad.requests_to("POST", "/v1/job/ml-web/scale")[-1]
            assert scale.header("X-Nomad-Token") == token
            assert "web" in (alloc / "data" / "forescale-audit.jsonl").read_text()  # on the sticky disk
            stop = subprocess.run(["docker", "stop", "-t", "30", name], env=docker_env, capture_output=True)
            assert stop.returncode == 0
            code = subprocess.run(["docker", "wait", name], env=docker_env, capture_output=True, text=True)
            assert code.stdout.strip() == "0"  # SIGTERM (the job's kill_signal): clean exit
        finally:
            subprocess.run(["docker", "rm", "-f", name], env=docker_env, capture_output=True)
