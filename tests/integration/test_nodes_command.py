"""The command provider: JSON over stdin/stdout, no shell, bounded time, stderr in errors; the two examples."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from autoscaler.core.errors import NodeProviderError
from autoscaler.core.settings.forescale import PoolConfig
from autoscaler.core.settings.nodes import CommandSettings
from autoscaler.nodes.command import CommandProvider
from tests import REPO
from tests.helpers import make_config, pool_dict

TFVARS = REPO / "scripts" / "nodes" / "terraform-tfvars"
INVENTORY = REPO / "scripts" / "nodes" / "inventory"


def pool() -> PoolConfig:
    return make_config(pool_dict("ocr")).pool("ocr")


def script(tmp_path: Path, body: str, name: str = "provider.sh") -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def provider(path: Path, *args: str, timeout: float = 5.0) -> CommandProvider:
    return CommandProvider(CommandSettings(path=path, args=list(args), timeout=timedelta(seconds=timeout)))


def test_request_on_stdin_and_reply_parsed(tmp_path: Path) -> None:
    seen = tmp_path / "request.json"
    body = (
        f"cat > {seen}\n"
        + """echo '{"desired": 2, "machines": ["a", {"id": "b", "launched_at": "2026-03-02T12:00:00Z"}], "max": 9}'\n"""
    )
    prov = provider(script(tmp_path, body))
    group = prov.describe(pool())
    assert json.loads(seen.read_text()) == {
        "version": 1,
        "pool": "ocr",
        "action": "describe",
        "desired": None,
        "remove": [],
        "replace": False,
    }
    assert (group.desired, group.max, [m.id for m in group.machines]) == (2, 9, ["a", "b"])
    assert group.machines[1].launched_at is not None and group.machines[0].launched_at is None


def test_arguments_are_never_shell_parsed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    seen = tmp_path / "argv"
    prov = provider(
        script(tmp_path, f'printf "%s\\n" "$@" > {seen}\necho \'{{"desired": 0}}\'\n'), f"; touch {marker}", "$(id)"
    )
    prov.describe(pool())
    assert seen.read_text().splitlines() == [f"; touch {marker}", "$(id)"]
    assert not marker.exists()


def test_non_zero_exit_carries_stderr(tmp_path: Path) -> None:
    prov = provider(script(tmp_path, "echo 'terraform: state locked by alice' >&2\nexit 3\n"))
    with pytest.raises(NodeProviderError, match=r"exited with status 3; stderr: terraform: state locked by alice"):
        prov.describe(pool())


def test_garbage_on_stdout_is_a_clear_error(tmp_path: Path) -> None:
    prov = provider(script(tmp_path, "echo 'Applying... done'\necho 'oops' >&2\n"))
    with pytest.raises(NodeProviderError, match=r"printed no JSON object on stdout \(got 'Applying... done'\).*oops"):
        prov.describe(pool())
    prov = provider(script(tmp_path, """echo '{"desired": "three"}'\n""", "p2.sh"))
    with pytest.raises(NodeProviderError, match="'desired' as a non-negative integer"):
        prov.describe(pool())


def test_a_hanging_command_is_killed_with_its_children(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    prov = provider(script(tmp_path, f"sleep 30 &\necho $! > {child_pid}\nwait\n"), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(NodeProviderError, match="did not answer within 1s and was killed") as info:
        prov.describe(pool())
    assert info.value.retryable
    assert time.monotonic() - started < 10  # bounded by the timeout, not by the child's sleep
    pid = int(child_pid.read_text())
    assert not _alive_sleep(pid), "the command's child survived the timeout"


def _alive_sleep(pid: int) -> bool:
    """Is ``pid`` still our `sleep 30` (not a zombie, not a reused pid of another program)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return cmdline[:2] == [b"sleep", b"30"] and state != "Z"


def test_missing_or_not_executable_path(tmp_path: Path) -> None:
    with pytest.raises(NodeProviderError, match="not an executable file"):
        provider(tmp_path / "nope").describe(pool())
    plain = tmp_path / "plain.sh"
    plain.write_text("echo hi")
    with pytest.raises(NodeProviderError, match="chmod"):
        provider(plain).describe(pool())


def test_terminate_failures_per_machine_and_short_scale_out(tmp_path: Path) -> None:
    body = """read req
case "$req" in
  *terminate*) echo '{"desired": 1, "failed": {"b": "host is locked"}}' ;;
  *) echo '{"desired": 2}' ;;
esac
"""
    prov = provider(script(tmp_path, body))
    group = prov.describe(pool())
    results = prov.terminate(pool(), group, ["a", "b"])
    assert [(r.machine, r.ok) for r in results] == [("a", True), ("b", False)]
    assert "host is locked" in (results[1].error or "")
    with pytest.raises(NodeProviderError, match=r"asked for a capacity of 5 \(scale_out\), it answered desired=2"):
        prov.scale_out(pool(), group, 5)


# -- the shipped examples ------------------------------------------------------------------------------------


def test_terraform_tfvars_example_adds_and_removes_exact_names(tmp_path: Path) -> None:
    tfvars = tmp_path / "tf" / "ocr.auto.tfvars.json"
    prov = provider(TFVARS, "--file", str(tfvars), "--prefix", "ocr-gpu-", "--max", "5")
    group = prov.describe(pool())
    assert (group.desired, group.max, group.machines) == (0, 5, ())
    note = prov.scale_out(pool(), group, 3)
    assert "0 → 3" in note
    data = json.loads(tfvars.read_text())
    assert sorted(data["gpu_nodes"]) == ["ocr-gpu-1", "ocr-gpu-2", "ocr-gpu-3"]
    group = prov.describe(pool())
    assert all(m.launched_at is not None for m in group.machines)
    results = prov.terminate(pool(), group, ["ocr-gpu-2"])
    assert results[0].ok
    assert sorted(json.loads(tfvars.read_text())["gpu_nodes"]) == ["ocr-gpu-1", "ocr-gpu-3"]
    group = prov.describe(pool())
    prov.scale_out(pool(), group, 3)  # the lowest free number is reused only once it is gone
    assert sorted(json.loads(tfvars.read_text())["gpu_nodes"]) == ["ocr-gpu-1", "ocr-gpu-2", "ocr-gpu-3"]
    results = prov.terminate(pool(), prov.describe(pool()), ["ocr-gpu-9"])
    assert not results[0].ok and "not in" in (results[0].error or "")
    with pytest.raises(NodeProviderError, match="above the group's max 5 \\(not asked\\)"):
        prov.scale_out(pool(), prov.describe(pool()), 6)


def test_inventory_example_switches_hosts_and_runs_the_hook(tmp_path: Path) -> None:
    inv = tmp_path / "gpu-hosts.txt"
    inv.write_text("# rack 4\ngpu-a active\ngpu-b standby\ngpu-c standby  # new PSU\n")
    calls = tmp_path / "hook.log"
    hook = script(
        tmp_path,
        f'echo "$1 $2" >> {calls}\n[ "$2" != gpu-c ] || {{ echo "BMC unreachable" >&2; exit 1; }}\n',
        "hook.sh",
    )
    prov = provider(INVENTORY, "--file", str(inv), "--hook", str(hook))
    group = prov.describe(pool())
    assert (group.desired, group.max, [m.id for m in group.machines]) == (1, 3, ["gpu-a"])
    prov.scale_out(pool(), group, 2)
    assert "gpu-b active" in inv.read_text() and inv.read_text().startswith("# rack 4\n")
    with pytest.raises(NodeProviderError, match=r"asked for a capacity of 3 \(scale_out\), it answered desired=2"):
        prov.scale_out(pool(), prov.describe(pool()), 3)  # gpu-c's hook fails: it stays standby
    assert "gpu-c standby" in inv.read_text()
    results = prov.terminate(pool(), prov.describe(pool()), ["gpu-a", "gpu-z"])
    assert [(r.machine, r.ok) for r in results] == [("gpu-a", True), ("gpu-z", False)]
    assert calls.read_text().splitlines() == ["on gpu-b", "on gpu-c", "off gpu-a"]
    assert [m.id for m in prov.describe(pool()).machines] == ["gpu-b"]


def test_machines_that_is_not_a_list_is_refused(tmp_path: Path) -> None:
    """A reply with "machines" as an object (or a number, or an id twice) is refused, never acted on."""
    for machines in ('{"a": 1}', "3", '["a", "a"]', '[""]'):
        prov = provider(
            script(tmp_path, f"""echo '{{"desired": 1, "machines": {machines}}}'\n""", f"p{len(machines)}.sh")
        )
        with pytest.raises(NodeProviderError) as info:
            prov.describe(pool())
        assert info.value.code == "Garbage" and "machines" in str(info.value), machines
