"""The fake Nomad's client nodes: the registry, the placement feasibility checks, and the node read endpoints.

Nomad creates an allocation only on a registered, ready, eligible node that passes every constraint and has
room (nomad-facts §1, §6; NOTES.md §D). This module holds what the fake needs to model that:

* node records shaped like ``GET /v1/node/:id`` (``node-read-gpu.derived.response.json``), with the AWS
  fingerprint attributes (``unique.platform.aws.instance-id`` …, client/fingerprint/env_aws.go) and an NVIDIA T4
  device as nomad-device-nvidia reports it (``device-nvidia-t4.derived.fragment.json``: memory = NVML total ÷ 2^20
  = 15109 MiB, attributes with their null members, nomad-facts §10);
* ``feasibility``: why a node cannot take one allocation of a task group (drivers, constraints incl.
  ``${device.attr.memory}`` with units, ``distinct_hosts``, devices, cpu/memory), with the AllocMetric keys the
  scheduler reports (``ConstraintFiltered``: ``"missing drivers"``, ``"distinct_hosts"``, ``"missing devices"``,
  ``"<LTarget> <Operand> <RTarget>"``; ``DimensionExhausted``: ``"cpu"``, ``"memory"``,
  ``"devices: no devices match request"``);
* ``NodeRegistry``: the seeding helpers a test uses (``add_node``, ``remove_node``, ``set_node_status``,
  ``set_node_eligibility``, ``node``, ``node_list``), mixed into ``FakeNomad``;
* the read endpoints ``GET /v1/nodes`` (stubs, ``?prefix``, ``?resources``, ``?os``, a go-bexpr subset in
  ``?filter``), ``GET /v1/node/:id`` (404 ``node not found``; ``SecretID`` blanked, top-level ``Drain``) and
  ``GET /v1/node/:id/allocations`` (full allocations; ``200 []`` for an unknown node), ACL ``node:read``.

Extending it (drain, eligibility, purge endpoints): change node records through ``NodeRegistry._update_node`` so
the index moves, blocked evaluations are retried and allocations on a node that went away are replaced.
"""

from __future__ import annotations

import copy
import functools
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.nomad import FakeNomad, Reply, _Ctx

NODE_STATUSES = ("initializing", "ready", "down", "disconnected")
T4_MEMORY_MIB = 15109  # 15,843,721,216 B ÷ 2^20 (nomad-device-nvidia determineMemoryInfo; nomad-facts §10)
T4_NAME = "Tesla T4"
DEFAULT_CPU_MHZ = 2500
AUTO_NODE_CPU_SHARES = 8 * DEFAULT_CPU_MHZ  # a g4dn.2xlarge-sized client: 8 vCPU, 32 GiB, one T4
AUTO_NODE_MEMORY_MB = 31_800
TERMINAL_CLIENT = {"complete", "failed", "lost"}

BASE_ATTRIBUTES = {
    "cpu.arch": "amd64",
    "cpu.frequency": str(DEFAULT_CPU_MHZ),
    "cpu.modelname": "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz",
    "driver.docker": "1",
    "driver.exec": "1",
    "driver.raw_exec": "1",
    "kernel.name": "linux",
    "kernel.version": "6.1.0-18-cloud-amd64",
    "nomad.version": "1.9.3",
    "nomad.service_discovery": "true",
    "os.name": "debian",
    "os.version": "12",
    "os.signals": "SIGABRT,SIGALRM,SIGBUS,SIGCHLD,SIGCONT,SIGFPE,SIGHUP,SIGILL,SIGINT,SIGIO,SIGIOT,SIGKILL,SIGPIPE,"
    "SIGPROF,SIGQUIT,SIGSEGV,SIGSTOP,SIGSYS,SIGTERM,SIGTRAP,SIGTSTP,SIGTTIN,SIGTTOU,SIGURG,SIGUSR1,SIGUSR2,"
    "SIGWINCH,SIGXCPU,SIGXFSZ",
}
DRIVERS = ("docker", "exec", "raw_exec")


def _links(attrs: Mapping[str, str]) -> dict[str, str]:
    """Links the GCE/Azure fingerprints add (env_gce.go: "gce" → the instance id; env_azure.go: "azure" → vmId)."""
    out = {}
    if "unique.platform.gce.id" in attrs:
        out["gce"] = attrs["unique.platform.gce.id"]
    if "unique.platform.azure.id" in attrs:
        out["azure"] = attrs["unique.platform.azure.id"]
    return out


def _uuid() -> str:
    return str(uuid.uuid4())


def _attr(value: int | float | str | bool, unit: str = "") -> dict[str, Any]:
    """A device attribute as Nomad's JSON shows it: every member present, the unused ones null."""
    out: dict[str, Any] = {"Float": None, "Int": None, "String": None, "Bool": None, "Unit": unit}
    if isinstance(value, bool):
        out["Bool"] = value
    elif isinstance(value, int):
        out["Int"] = value
    elif isinstance(value, float):
        out["Float"] = value
    else:
        out["String"] = value
    return out


def nvidia_t4(count: int = 1, *, memory_mib: int = T4_MEMORY_MIB) -> dict[str, Any]:
    """One NVIDIA device group of ``count`` T4s, as nomad-device-nvidia fingerprints it."""
    return {
        "Vendor": "nvidia",
        "Type": "gpu",
        "Name": T4_NAME,
        "Attributes": {
            "memory": _attr(memory_mib, "MiB"),
            "power": _attr(70, "W"),
            "bar1": _attr(256, "MiB"),
            "driver_version": _attr("535.161.08"),
            "cores_clock": _attr(1590, "MHz"),
            "memory_clock": _attr(5001, "MHz"),
            "pci_bandwidth": _attr(15760, "MB/s"),
            "display_state": _attr("Disabled"),
            "persistence_mode": _attr("Enabled"),
        },
        "Instances": [
            {
                "ID": f"GPU-{_uuid()}",
                "Healthy": True,
                "HealthDescription": "",
                "Locality": {"PciBusID": f"00000000:00:{0x1E + i:02X}.0"},
            }
            for i in range(count)
        ],
    }


def _driver_info(name: str) -> dict[str, Any]:
    return {
        "Attributes": {f"driver.{name}": "true"},
        "Detected": True,
        "HealthDescription": "Healthy",
        "Healthy": True,
        "UpdateTime": "2026-01-05T09:00:00Z",
    }


def build_node(
    *,
    index: int,
    seq: int,
    name: str | None = None,
    datacenter: str = "dc1",
    node_pool: str = "default",
    node_class: str = "",
    status: str = "ready",
    eligibility: str = "eligible",
    attributes: Mapping[str, str] | None = None,
    meta: Mapping[str, str] | None = None,
    gpus: int = 1,
    gpu_memory_mib: int = T4_MEMORY_MIB,
    cpu_shares: int = AUTO_NODE_CPU_SHARES,
    memory_mb: int = AUTO_NODE_MEMORY_MB,
    reserved_cpu: int = 0,
    reserved_memory_mb: int = 0,
    instance_id: str | None = None,
    availability_zone: str | None = None,
    instance_type: str | None = None,
    platform: str = "aws",
) -> dict[str, Any]:
    """A full node record (``structs.Node`` fields of nomad-facts §6) of an AWS GPU client (``platform="gce"`` or
    ``"azure"``: no AWS fingerprint; pass that cloud's in ``attributes``)."""
    if status not in NODE_STATUSES:
        raise ValueError(f"node status must be one of {', '.join(NODE_STATUSES)}")
    if eligibility not in ("eligible", "ineligible"):
        raise ValueError("eligibility must be 'eligible' or 'ineligible'")
    iid = instance_id or "i-0" + secrets.token_hex(8)
    az = availability_zone or (datacenter if re.fullmatch(r"[a-z]{2}-[a-z]+-\d[a-z]", datacenter) else "eu-west-1a")
    ip = f"10.0.{seq // 250}.{seq % 250 + 4}"
    hostname = f"ip-{ip.replace('.', '-')}.eu-west-1.compute.internal"
    attrs = dict(BASE_ATTRIBUTES)
    attrs.update(
        {
            "unique.hostname": name or hostname,
            "unique.network.ip-address": ip,
            "unique.platform.aws.instance-id": iid,
            "unique.platform.aws.hostname": hostname,
            "unique.platform.aws.local-hostname": hostname,
            "unique.platform.aws.local-ipv4": ip,
            "platform.aws.placement.availability-zone": az,
            "platform.aws.instance-type": instance_type or ("g4dn.2xlarge" if gpus else "m6i.2xlarge"),
            "platform.aws.ami-id": "ami-0a1b2c3d4e5f60718",
            "platform.aws.instance-life-cycle": "on-demand",
            "cpu.numcores": str(max(1, cpu_shares // DEFAULT_CPU_MHZ)),
            "cpu.totalcompute": str(cpu_shares),
            "memory.totalbytes": str(memory_mb * 2**20),
        }
    )
    if platform != "aws":  # env_aws.go fingerprints nothing off AWS (client/fingerprint/env_aws.go)
        attrs = {k: v for k, v in attrs.items() if ".aws." not in k}
    attrs.update(attributes or {})
    node_id = _uuid()
    return {
        "ID": node_id,
        "SecretID": _uuid(),
        "Datacenter": datacenter,
        "Name": name or hostname,
        "CgroupParent": "nomad.slice",
        "HTTPAddr": f"{ip}:4646",
        "TLSEnabled": False,
        "Attributes": attrs,
        "NodeResources": {
            "Cpu": {"CpuShares": cpu_shares, "TotalCpuCores": max(1, cpu_shares // DEFAULT_CPU_MHZ)},
            "Memory": {"MemoryMB": memory_mb},
            "Disk": {"DiskMB": 100_000},
            "Networks": None,
            "Devices": [nvidia_t4(gpus, memory_mib=gpu_memory_mib)] if gpus else None,
            "NodeNetworks": None,
            "MinDynamicPort": 20000,
            "MaxDynamicPort": 32000,
        },
        "ReservedResources": {
            "Cpu": {"CpuShares": reserved_cpu, "ReservedCpuCores": None},
            "Memory": {"MemoryMB": reserved_memory_mb},
            "Disk": {"DiskMB": 0},
            "Networks": {"ReservedHostPorts": ""},
        },
        "Links": {"aws.ec2": f"{az}.{iid}"} if platform == "aws" else _links(attrs),
        "Meta": dict(meta or {}),
        "NodeClass": node_class,
        "NodePool": node_pool,
        "ComputedClass": f"v1:{abs(hash((node_class, node_pool, datacenter))) % 10**18}",
        "DrainStrategy": None,
        "SchedulingEligibility": eligibility,
        "Status": status,
        "StatusDescription": "",
        "IdentitySigningKeyID": "",
        "StatusUpdatedAt": 0,
        "Events": [
            {
                "CreateIndex": index,
                "Details": None,
                "Message": "Node registered",
                "Subsystem": "Cluster",
                "Timestamp": "2026-01-05T09:00:00Z",
            }
        ],
        "Drivers": {d: _driver_info(d) for d in DRIVERS},
        "CSIControllerPlugins": None,
        "CSINodePlugins": None,
        "HostVolumes": None,
        "GCVolumesOnNodeGC": False,
        "HostNetworks": None,
        "LastDrain": None,
        "NodeMaxAllocs": 0,
        "LastMissedHeartbeatIndex": 0,
        "LastAllocUpdateIndex": 0,
        "CreateIndex": index,
        "ModifyIndex": index,
    }


def node_view(node: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /v1/node/:id``: the node through ``nodeExt`` (SecretID blanked, a top-level ``Drain``)."""
    out = copy.deepcopy(dict(node))
    out["SecretID"] = ""
    out["Drain"] = node.get("DrainStrategy") is not None
    return out


def node_stub(node: Mapping[str, Any], *, resources: bool = False, os: bool = False) -> dict[str, Any]:
    """``structs.NodeListStub`` (``Node.Stub``): ``Attributes`` only with ``os=true`` (``os.name`` only)."""
    stub: dict[str, Any] = {
        "Address": str(node.get("HTTPAddr", "")).rsplit(":", 1)[0],
        "ID": node["ID"],
        "Datacenter": node["Datacenter"],
        "Name": node["Name"],
        "NodePool": node["NodePool"],
        "NodeClass": node["NodeClass"],
        "Version": (node.get("Attributes") or {}).get("nomad.version", ""),
        "Drain": node.get("DrainStrategy") is not None,
        "SchedulingEligibility": node["SchedulingEligibility"],
        "Status": node["Status"],
        "StatusDescription": node.get("StatusDescription", ""),
        "Drivers": copy.deepcopy(node.get("Drivers") or {}),
        "HostVolumes": copy.deepcopy(node.get("HostVolumes")),
        "LastDrain": copy.deepcopy(node.get("LastDrain")),
        "CreateIndex": node["CreateIndex"],
        "ModifyIndex": node["ModifyIndex"],
    }
    if os:
        stub["Attributes"] = {"os.name": (node.get("Attributes") or {}).get("os.name", "")}
    if resources:
        stub["NodeResources"] = copy.deepcopy(node.get("NodeResources"))
        stub["ReservedResources"] = copy.deepcopy(node.get("ReservedResources"))
    return stub


# --------------------------------------------------------------------------------------------- feasibility


def alloc_metric(node_pool: str) -> dict[str, Any]:
    """An empty ``structs.AllocMetric`` (nomad/structs/alloc.go), as evaluations report placement failures."""
    return {
        "NodesEvaluated": 0,
        "NodesFiltered": 0,
        "NodesInPool": 0,
        "NodePool": node_pool,
        "NodesAvailable": {},
        "ClassFiltered": None,
        "ConstraintFiltered": None,
        "NodesExhausted": 0,
        "ClassExhausted": None,
        "DimensionExhausted": None,
        "QuotaExhausted": None,
        "ResourcesExhausted": None,
        "Scores": None,
        "ScoreMetaData": None,
        "AllocationTime": 0,
        "CoalescedFailures": 0,
    }


def _bump_key(metric: dict[str, Any], key: str, item: str) -> None:
    table = metric.get(key) or {}
    table[item] = table.get(item, 0) + 1
    metric[key] = table


@dataclass
class Usage:
    """What the non-terminal allocations on each node take (cpu MHz, memory MB, GPU instance IDs, jobs/groups)."""

    cpu: dict[str, int] = field(default_factory=dict)
    memory: dict[str, int] = field(default_factory=dict)
    devices: dict[str, set[str]] = field(default_factory=dict)
    groups: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)  # (namespace, job, group)

    def add(self, node_id: str, key: tuple[str, str, str], cpu: int, memory: int, devices: Iterable[str]) -> None:
        self.cpu[node_id] = self.cpu.get(node_id, 0) + cpu
        self.memory[node_id] = self.memory.get(node_id, 0) + memory
        self.devices.setdefault(node_id, set()).update(devices)
        self.groups.setdefault(node_id, set()).add(key)


def group_resources(tg: Mapping[str, Any]) -> tuple[int, int]:
    """CPU MHz and memory MB one allocation of the group asks for (the sum of its tasks' ``Resources``)."""
    cpu = memory = 0
    for task in tg.get("Tasks") or []:
        res = task.get("Resources") or {}
        cpu += int(res.get("CPU") if res.get("CPU") is not None else 100)
        memory += int(res.get("MemoryMB") if res.get("MemoryMB") is not None else 300)
    return cpu, memory


def device_requests(tg: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for task in tg.get("Tasks") or []:
        for dev in (task.get("Resources") or {}).get("Devices") or []:
            out.append(dev)
    return out


_UNIT_MIB = {"b": 1 / 2**20, "kib": 1 / 1024, "kb": 1000 / 2**20, "mib": 1.0, "mb": 10**6 / 2**20}
_UNIT_MIB |= {"gib": 1024.0, "gb": 10**9 / 2**20, "tib": 2**20, "tb": 10**12 / 2**20}
_QUANTITY = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z/]*)\s*$")


def _quantity(text: str, unit: str = "") -> float | None:
    """A number with an optional unit ("16384 MiB", "16 GiB"), in MiB when it is a memory unit."""
    m = _QUANTITY.match(text)
    if not m:
        return None
    value, suffix = float(m.group(1)), (m.group(2) or unit).lower()
    return value * _UNIT_MIB[suffix] if suffix in _UNIT_MIB else value


def _device_attr_value(attr: Mapping[str, Any]) -> Any:
    for key in ("Int", "Float", "String", "Bool"):
        if attr.get(key) is not None:
            return attr[key]
    return None


def _resolve(target: str, node: Mapping[str, Any], device: Mapping[str, Any] | None = None) -> tuple[bool, Any]:
    """Interpolate a constraint side (``${attr.x}``, ``${node.class}``, ``${meta.k}``, ``${device.attr.memory}``)."""
    m = re.fullmatch(r"\$\{([^}]+)\}", target.strip())
    if not m:
        return True, target
    ref = m.group(1)
    simple = {
        "node.unique.id": "ID",
        "node.unique.name": "Name",
        "node.datacenter": "Datacenter",
        "node.class": "NodeClass",
        "node.pool": "NodePool",
    }
    if ref in simple:
        return simple[ref] in node, node.get(simple[ref])
    if ref.startswith("attr."):
        attrs = node.get("Attributes") or {}
        return (ref[5:] in attrs), attrs.get(ref[5:])
    if ref.startswith("meta."):
        meta = node.get("Meta") or {}
        return (ref[5:] in meta), meta.get(ref[5:])
    if device is not None and ref.startswith("device.attr."):
        attr = (device.get("Attributes") or {}).get(ref[12:])
        if attr is None:
            return False, None
        value = _device_attr_value(attr)
        return True, f"{value} {attr.get('Unit') or ''}".strip() if attr.get("Unit") else value
    if device is not None and ref in ("device.model", "device.vendor", "device.type"):
        return True, device.get({"device.model": "Name", "device.vendor": "Vendor", "device.type": "Type"}[ref])
    return False, None


def _compare(left: Any, right: Any) -> int | None:
    lq, rq = _quantity(str(left)), _quantity(str(right))
    if lq is not None and rq is not None:
        return (lq > rq) - (lq < rq)
    try:
        lv = [int(p) for p in str(left).split(".")]
        rv = [int(p) for p in str(right).split(".")]
        return (lv > rv) - (lv < rv)
    except ValueError:
        return None


def constraint_holds(c: Mapping[str, Any], node: Mapping[str, Any], device: Mapping[str, Any] | None = None) -> bool:
    """``structs.Constraint`` on one node (scheduler/feasible: checkConstraint), for the operands jobspecs use."""
    op = str(c.get("Operand") or "=")
    lfound, left = _resolve(str(c.get("LTarget") or ""), node, device)
    rfound, right = _resolve(str(c.get("RTarget") or ""), node, device)
    if op == "is_set":
        return lfound
    if op == "is_not_set":
        return not lfound
    if not (lfound and rfound) or left is None:
        return False
    if op in ("=", "==", "is"):
        return str(left) == str(right)
    if op in ("!=", "not"):
        return str(left) != str(right)
    if op in ("<", "<=", ">", ">=", "version", "semver"):
        if op in ("version", "semver"):
            return all(_version_clause(str(left), clause.strip()) for clause in str(right).split(","))
        cmp = _compare(left, right)
        if cmp is None:
            cmp = (str(left) > str(right)) - (str(left) < str(right))
        return {"<": cmp < 0, "<=": cmp <= 0, ">": cmp > 0, ">=": cmp >= 0}[op]
    if op == "regexp":
        return re.search(str(right), str(left)) is not None
    if op in ("set_contains", "set_contains_all"):
        have = {s.strip() for s in str(left).split(",")}
        return {s.strip() for s in str(right).split(",")} <= have
    if op == "set_contains_any":
        have = {s.strip() for s in str(left).split(",")}
        return bool({s.strip() for s in str(right).split(",")} & have)
    return False


def _version_clause(left: str, clause: str) -> bool:
    m = re.fullmatch(r"(>=|<=|>|<|=|!=)?\s*(\S+)", clause)
    if not m:
        return False
    return constraint_holds({"LTarget": left, "RTarget": m.group(2), "Operand": m.group(1) or "="}, {}, None)


def datacenter_matches(node_dc: str, patterns: Iterable[str]) -> bool:
    """Job ``datacenters`` entries are globs since Nomad 1.5 (``*`` = all)."""
    return any(_datacenter_glob(pattern).match(node_dc) for pattern in patterns)


@functools.lru_cache(maxsize=256)
def _datacenter_glob(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")  # compiled once: every placement asks


def _device_matches(request: Mapping[str, Any], device: Mapping[str, Any]) -> bool:
    parts = str(request.get("Name") or "").split("/")
    if len(parts) == 1:
        ok = parts[0] == device["Type"]
    elif len(parts) == 2:
        ok = parts[0] == device["Vendor"] and parts[1] == device["Type"]
    else:
        ok = parts[0] == device["Vendor"] and parts[1] == device["Type"] and "/".join(parts[2:]) == device["Name"]
    return ok and all(constraint_holds(c, {}, device) for c in request.get("Constraints") or [])


def _distinct_hosts(constraints: Iterable[Mapping[str, Any]] | None) -> bool:
    return any(
        c.get("Operand") == "distinct_hosts" and str(c.get("RTarget", "true")).lower() in ("true", "")
        for c in constraints or []
    )


def _node_constraints(job: Mapping[str, Any], tg: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for c in [*(job.get("Constraints") or []), *(tg.get("Constraints") or [])]:
        out.append(c)
    for task in tg.get("Tasks") or []:
        out.extend(task.get("Constraints") or [])
    return [c for c in out if c.get("Operand") not in ("distinct_hosts", "distinct_property")]


def feasibility(
    job: Mapping[str, Any],
    tg: Mapping[str, Any],
    node: Mapping[str, Any],
    usage: Usage,
) -> tuple[str, str, list[str]] | tuple[None, None, list[str]]:
    """Why ``node`` cannot take one more allocation of ``tg``: (``"filtered"|"exhausted"``, key, []) or
    (None, None, GPU instance IDs to assign)."""
    drivers = node.get("Drivers") or {}
    for task in tg.get("Tasks") or []:
        info = drivers.get(task.get("Driver") or "")
        if not info or not info.get("Detected") or not info.get("Healthy"):
            return "filtered", "missing drivers", []
    for c in _node_constraints(job, tg):
        if not constraint_holds(c, node):
            return "filtered", f"{c.get('LTarget', '')} {c.get('Operand', '=')} {c.get('RTarget', '')}", []
    key = (str(job["Namespace"]), str(job["ID"]), str(tg["Name"]))
    here = usage.groups.get(node["ID"], set())
    if _distinct_hosts(job.get("Constraints")) and any(k[:2] == key[:2] for k in here):
        return "filtered", "distinct_hosts", []
    if _distinct_hosts(tg.get("Constraints")) and key in here:
        return "filtered", "distinct_hosts", []
    assigned: list[str] = []
    devices = (node.get("NodeResources") or {}).get("Devices") or []
    for request in device_requests(tg):
        want = int(request.get("Count") or 1)
        matching = [d for d in devices if _device_matches(request, d)]
        if not matching:
            return "filtered", "missing devices", []
        used = usage.devices.get(node["ID"], set()) | set(assigned)
        free = [i["ID"] for d in matching for i in d.get("Instances") or [] if i.get("Healthy") and i["ID"] not in used]
        if len(free) < want:
            return "exhausted", "devices: no devices match request", []
        assigned += free[:want]
    cpu, memory = group_resources(tg)
    cpu_total, mem_total = capacity(node)
    if usage.cpu.get(node["ID"], 0) + cpu > cpu_total:
        return "exhausted", "cpu", []
    if usage.memory.get(node["ID"], 0) + memory > mem_total:
        return "exhausted", "memory", []
    return None, None, assigned


def capacity(node: Mapping[str, Any]) -> tuple[int, int]:
    """CPU MHz and memory MB a node offers allocations: its resources less what it reserves."""
    res = node.get("NodeResources") or {}
    reserved = node.get("ReservedResources") or {}
    cpu_total = int((res.get("Cpu") or {}).get("CpuShares") or 0)
    cpu_total -= int((reserved.get("Cpu") or {}).get("CpuShares") or 0)
    mem_total = int((res.get("Memory") or {}).get("MemoryMB") or 0)
    mem_total -= int((reserved.get("Memory") or {}).get("MemoryMB") or 0)
    return cpu_total, mem_total


def has_room(node: Mapping[str, Any], usage: Usage, cpu: int, memory: int, gpus: int) -> bool:
    """False when ``feasibility`` must fail on ``node`` for room alone: not ``cpu`` MHz, ``memory`` MB or ``gpus``
    free healthy device instances left. Its sums, so a True proves nothing (the full check decides)."""
    cpu_total, mem_total = capacity(node)
    if usage.cpu.get(node["ID"], 0) + cpu > cpu_total or usage.memory.get(node["ID"], 0) + memory > mem_total:
        return False
    if gpus:
        used = usage.devices.get(node["ID"], set())
        devices = (node.get("NodeResources") or {}).get("Devices") or []
        free = {i["ID"] for d in devices for i in d.get("Instances") or [] if i.get("Healthy")}
        return len(free - used) >= gpus
    return True


def record_failure(metric: dict[str, Any], node: Mapping[str, Any], kind: str, key: str) -> None:
    if kind == "filtered":
        metric["NodesFiltered"] += 1
        _bump_key(metric, "ClassFiltered", node["NodeClass"] or "")
        _bump_key(metric, "ConstraintFiltered", key)
    else:
        metric["NodesExhausted"] += 1
        _bump_key(metric, "ClassExhausted", node["NodeClass"] or "")
        _bump_key(metric, "DimensionExhausted", key)


def auto_node_spec(job: Mapping[str, Any], tg: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``build_node`` for a client made to measure for ``tg`` (the "infinite fleet" mode).

    It takes the job's pool and first concrete datacenter, equality constraints on node class, datacenter, meta
    and attributes, one T4 per requested GPU and room for the allocation. It is still an ordinary T4 client: a
    constraint no T4 meets (``${device.attr.memory} >= 16384 MiB``) leaves the allocation queued, as on Nomad.
    """
    pool = str(job.get("NodePool") or "default")
    dcs = [d for d in job.get("Datacenters") or [] if "*" not in d and "?" not in d]
    spec: dict[str, Any] = {
        "node_pool": "default" if pool == "all" else pool,
        "datacenter": dcs[0] if dcs else "dc1",
        "attributes": {},
        "meta": {},
    }
    for c in _node_constraints(job, tg):
        if c.get("Operand") not in ("=", "==", "is"):
            continue
        left, right = str(c.get("LTarget") or ""), str(c.get("RTarget") or "")
        if left == "${node.class}":
            spec["node_class"] = right
        elif left == "${node.datacenter}":
            spec["datacenter"] = right
        elif left.startswith("${meta.") and left.endswith("}"):
            spec["meta"][left[7:-1]] = right
        elif left.startswith("${attr.") and left.endswith("}"):
            spec["attributes"][left[7:-1]] = right
    gpus = sum(int(r.get("Count") or 1) for r in device_requests(tg))
    cpu, memory = group_resources(tg)
    spec["gpus"] = gpus
    spec["cpu_shares"] = max(AUTO_NODE_CPU_SHARES, cpu)
    spec["memory_mb"] = max(AUTO_NODE_MEMORY_MB, memory)
    return spec


# --------------------------------------------------------------------------------------------- go-bexpr subset


class FilterError(ValueError):
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<str>\"(?:[^\"\\]|\\.)*\"|`[^`]*`)|(?P<op>==|!=|\(|\))|(?P<num>-?\d+(?:\.\d+)?)|"
    r"(?P<word>[A-Za-z_][A-Za-z0-9_\-]*(?:(?:\.[A-Za-z_][A-Za-z0-9_\-]*)|(?:\[\"[^\"]*\"\]))*))"
)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise FilterError(f"unexpected text at position {pos}: {expr[pos : pos + 10]!r}")
        kind = next(k for k, v in m.groupdict().items() if v is not None)
        value = m.group(kind)
        if kind == "str":
            value = value[1:-1].encode().decode("unicode_escape") if value[0] == '"' else value[1:-1]
        out.append((kind, value))
        pos = m.end()
    return out


def _select(record: Any, selector: str) -> tuple[bool, Any]:
    parts = re.findall(r"[A-Za-z_][A-Za-z0-9_\-]*|\[\"[^\"]*\"\]", selector)
    value = record
    for part in parts:
        key = part[2:-2] if part.startswith("[") else part
        if not isinstance(value, Mapping) or key not in value:
            return False, None
        value = value[key]
    return True, value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def compile_filter(expr: str) -> Callable[[Mapping[str, Any]], bool]:
    """The part of go-bexpr node filters use: ``==``, ``!=``, ``in``, ``not in``, ``contains``, ``matches``,
    ``is empty``, ``is not empty``, ``and``, ``or``, ``not``, parentheses; selectors like ``Meta.zone`` or
    ``Attributes["unique.platform.aws.instance-id"]``. Anything else is a FilterError (→ 400)."""
    toks = _tokens(expr)
    pos = 0

    def peek(offset: int = 0) -> tuple[str, str] | None:
        return toks[pos + offset] if pos + offset < len(toks) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(toks):
            raise FilterError("unexpected end of expression")
        pos += 1
        return toks[pos - 1]

    def value_token() -> str:
        kind, value = take()
        if kind not in ("str", "num", "word"):
            raise FilterError(f"expected a value, got {value!r}")
        return value

    def parse_or() -> Callable[[Mapping[str, Any]], bool]:
        left = parse_and()
        while peek() == ("word", "or"):
            take()
            right = parse_and()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def parse_and() -> Callable[[Mapping[str, Any]], bool]:
        left = parse_not()
        while peek() == ("word", "and"):
            take()
            right = parse_not()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def parse_not() -> Callable[[Mapping[str, Any]], bool]:
        if peek() == ("word", "not"):
            take()
            inner = parse_not()
            return lambda r: not inner(r)
        return parse_primary()

    def parse_primary() -> Callable[[Mapping[str, Any]], bool]:
        if peek() == ("op", "("):
            take()
            inner = parse_or()
            if take() != ("op", ")"):
                raise FilterError("missing ')'")
            return inner
        first = take()
        nxt = peek()
        if first[0] in ("str", "num") or (nxt is not None and nxt[1] in ("in", "not") and first[0] == "word"):
            # value in Selector / value not in Selector
            negate = False
            if peek() == ("word", "not"):
                take()
                negate = True
            if take() != ("word", "in"):
                raise FilterError("expected 'in' after a value")
            sel = take()[1]
            needle = first[1]

            def member(r: Mapping[str, Any], sel: str = sel, needle: str = needle, negate: bool = negate) -> bool:
                found, hay = _select(r, sel)
                inside = found and (needle in hay if isinstance(hay, Mapping | list) else needle in _text(hay))
                return inside != negate

            return member
        sel = first[1]
        op = take()
        if op == ("op", "=="):
            want = value_token()
            return lambda r: (lambda f: f[0] and _text(f[1]) == want)(_select(r, sel))
        if op == ("op", "!="):
            want = value_token()
            return lambda r: not (lambda f: f[0] and _text(f[1]) == want)(_select(r, sel))
        if op == ("word", "is"):
            negate = peek() == ("word", "not")
            if negate:
                take()
            if take() != ("word", "empty"):
                raise FilterError("expected 'is empty' or 'is not empty'")
            return lambda r: (lambda f: (not f[0] or not f[1]) != negate)(_select(r, sel))
        if op == ("word", "contains"):
            want = value_token()
            return lambda r: (lambda f: f[0] and want in (f[1] if isinstance(f[1], Mapping | list) else _text(f[1])))(
                _select(r, sel)
            )
        if op == ("word", "matches"):
            pattern = value_token()
            return lambda r: (lambda f: f[0] and re.search(pattern, _text(f[1])) is not None)(_select(r, sel))
        raise FilterError(f"unsupported operator {op[1]!r}")

    predicate = parse_or()
    if pos != len(toks):
        raise FilterError(f"unexpected {toks[pos][1]!r}")
    return predicate


# --------------------------------------------------------------------------------------------- the mixin


class NodeRegistry:
    """Client nodes of the fake (mixed into FakeNomad; every method takes the fake's lock)."""

    nodes: dict[str, dict[str, Any]]
    auto_nodes: bool

    def add_node(self: FakeNomad, name: str | None = None, **kw: Any) -> dict[str, Any]:
        """Register a client node (``build_node`` keywords: ``datacenter``, ``node_pool``, ``node_class``,
        ``status``, ``eligibility``, ``attributes``, ``meta``, ``gpus``, ``gpu_memory_mib``, ``cpu_shares``,
        ``memory_mb``, ``reserved_cpu``, ``reserved_memory_mb``, ``instance_id``, ``availability_zone``,
        ``instance_type``). Blocked evaluations are retried, as a node registering unblocks them in Nomad."""
        with self._cond:
            index = self._bump()
            node = build_node(index=index, seq=len(self.nodes) + len(self._auto_node_ids) + 1, name=name, **kw)
            self.nodes[node["ID"]] = node
            self._after_node_change(node, previous_status=None)
            return copy.deepcopy(node)

    def node(self: FakeNomad, node_id: str) -> dict[str, Any] | None:
        with self._cond:
            node = self.nodes.get(node_id)
            return copy.deepcopy(node) if node else None

    def node_by_name(self: FakeNomad, name: str) -> dict[str, Any]:
        with self._cond:
            for node in self.nodes.values():
                if node["Name"] == name:
                    return copy.deepcopy(node)
            raise KeyError(name)

    def node_list(self: FakeNomad) -> list[dict[str, Any]]:
        """Every node, in Nomad's list order (by node ID)."""
        with self._cond:
            return [copy.deepcopy(n) for _, n in sorted(self.nodes.items())]

    def set_node_status(self: FakeNomad, node_id: str, status: str, description: str = "") -> dict[str, Any]:
        """``ready``/``initializing``/``down``/``disconnected``: allocations on a down node are lost and replaced; on a
        disconnected node those with ``disconnect.lost_after`` are ``unknown`` (replaced), the others lost."""
        if status not in NODE_STATUSES:
            raise ValueError(f"node status must be one of {', '.join(NODE_STATUSES)}")
        with self._cond:
            node = self.nodes[node_id]
            previous = node["Status"]
            return copy.deepcopy(self._update_node(node_id, Status=status, StatusDescription=description,
                                                   _previous_status=previous))  # fmt: skip

    def set_node_eligibility(self: FakeNomad, node_id: str, eligible: bool) -> dict[str, Any]:
        with self._cond:
            return copy.deepcopy(
                self._update_node(node_id, SchedulingEligibility="eligible" if eligible else "ineligible")
            )

    def remove_node(self: FakeNomad, node_id: str) -> None:
        """Deregister (purge) a node: its allocations are lost and replaced elsewhere (or queued)."""
        with self._cond:
            node = self.nodes.pop(node_id)
            self._bump()
            self._auto_node_ids.discard(node_id)
            self._after_node_change(node, previous_status=node["Status"], removed=True)

    def _update_node(self: FakeNomad, node_id: str, **changes: Any) -> dict[str, Any]:
        """Change fields of a node record (the one place node state changes: index, unblocking, lost allocs)."""
        previous = changes.pop("_previous_status", None)
        node = self.nodes.get(node_id)
        if node is None:
            raise KeyError(node_id)
        previous = node["Status"] if previous is None else previous
        node.update(changes)
        node["ModifyIndex"] = self._bump()
        self._after_node_change(node, previous_status=previous)
        return node


# --------------------------------------------------------------------------------------------- endpoints


def _bool_param(ctx: _Ctx, name: str) -> bool:
    raw = ctx.query.get(name)
    if raw is None:
        return False
    if raw == "":
        return True
    if raw.lower() in ("true", "1", "t"):
        return True
    if raw.lower() in ("false", "0", "f"):
        return False
    from tests.fakes.nomad import ApiError

    raise ApiError(400, f'Failed to parse node list fields: strconv.ParseBool: parsing "{raw}": invalid syntax')


def list_nodes(fake: FakeNomad, ctx: _Ctx) -> Reply:
    from tests.fakes.nomad import ApiError, Reply

    resources, os = _bool_param(ctx, "resources"), _bool_param(ctx, "os")
    prefix = ctx.query.get("prefix", "")
    predicate: Callable[[Mapping[str, Any]], bool] | None = None
    if ctx.query.get("filter"):
        try:
            predicate = compile_filter(ctx.query["filter"])
        except FilterError as exc:
            raise ApiError(400, f"failed to read filter expression: {exc}") from None
    with fake._cond:
        fake._authorize_node(ctx, "read")
        fake._wait_blocking(ctx.query)
        out = []
        for node_id, node in sorted(fake.nodes.items()):
            if not node_id.startswith(prefix):
                continue
            if predicate is not None and not predicate(node_view(node)):
                continue
            out.append(node_stub(node, resources=resources, os=os))
        return Reply(200, out, fake.index, blocking=True)


def read_node(fake: FakeNomad, ctx: _Ctx) -> Reply:
    from tests.fakes.nomad import ApiError, Reply

    with fake._cond:
        fake._authorize_node(ctx, "read")
        fake._wait_blocking(ctx.query)
        node = fake.nodes.get(ctx.params["node"])
        if node is None:
            raise ApiError(404, "node not found")
        return Reply(200, node_view(node), fake.index, blocking=True)


def node_allocations(fake: FakeNomad, ctx: _Ctx) -> Reply:
    from tests.fakes.nomad import ApiError, Reply

    with fake._cond:
        fake._authorize_node(ctx, "read")
        fake._wait_blocking(ctx.query)
        out = []
        for (ns, _job), allocs in sorted(fake.allocs.items()):
            try:
                fake._authorize(ctx, ns, ["read-job"])
            except ApiError:
                continue  # filtered to the namespaces the token may read (Node.GetAllocs)
            out += [fake._full_alloc(a) for a in allocs if a.get("NodeID") == ctx.params["node"]]
        faulty = fake._alloc_list_fault(ctx.params["node"], out)  # fail_node_allocations (nomad_strict.py)
        return faulty if faulty is not None else Reply(200, out, fake.index, blocking=True)


NODE_ROUTES: list[tuple[re.Pattern[str], tuple[str, ...], Callable[[FakeNomad, _Ctx], Reply]]] = [
    (re.compile(r"/v1/nodes"), ("GET",), list_nodes),
    (re.compile(r"/v1/node/(?P<node>[^/]+)/allocations"), ("GET",), node_allocations),
    (re.compile(r"/v1/node/(?P<node>[^/]+)"), ("GET",), read_node),
]
