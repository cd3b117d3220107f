"""Finding ``capacity_per_node``: the highest request rate per node at which the latency (or error) SLO held.

Two kinds of evidence, one answer shape (``CapacityEstimate``):

* **history** (``from_history``): samples of the pool's rate per ready node and of an SLO metric at the same
  times (a p95 latency, an error rate). Samples are sorted by load per node and cut into bins of equal count;
  the SLO "holds" in a bin when at least ``hold_share`` of its samples meet the threshold. The capacity is the
  top of the last bin below the first bin where it does not hold. If it never broke, history only proves a
  lower bound ("at least"); if it broke even in the lowest bin, the SLO metric is not about load.
* **a load test** (``from_load_test``): one row per load step on one node (offered req/s, the measured
  latency percentile, optionally the error rate and the workers per GPU under test). Per workers setting, the
  capacity is the highest step before the first failing one; the packing with the highest capacity per GPU
  wins (this is how the 4-workers-per-GPU packing of the case study was found).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Bound = Literal["limit", "at_least", "none"]


@dataclass(frozen=True)
class LoadBin:
    """Samples whose load per node lies in ``[low, high]``, and how the SLO fared there."""

    low: float
    high: float
    samples: int
    held_share: float  # fraction of samples meeting the SLO
    median: float  # median SLO metric
    worst: float  # highest SLO metric
    holds: bool


@dataclass(frozen=True)
class CapacityEstimate:
    """The estimate and its evidence; ``capacity`` is req/s per node (None when nothing held)."""

    capacity: float | None
    bound: Bound
    slo: str  # "p95 latency <= 3 s" — what was held
    samples: int
    bins: list[LoadBin] = field(default_factory=list)
    broke_at: float | None = None  # lowest load per node of the first bin where the SLO did not hold
    source: str = ""
    by_workers: dict[int, float | None] = field(default_factory=dict)  # load test: capacity per packing
    best_workers: int | None = None

    def sentence(self) -> str:
        """One paragraph a person can act on."""
        where = f", {self.source}" if self.source else ""
        if self.bound == "none" or self.capacity is None:
            return (
                f"the SLO ({self.slo}) did not hold even at the lowest load seen ({self.samples} samples{where}): "
                "the SLO query or "
                "threshold does not follow load, or the nodes are saturated by something else; no estimate"
            )
        packing = ""
        if self.best_workers is not None:
            packing = f" with {self.best_workers} worker(s) per GPU (the best packing tested)"
        if self.bound == "at_least":
            return (
                f"capacity_per_node is at least {self.capacity:.4g} req/s{packing}: the SLO ({self.slo}) held at "
                f"every load seen ({self.samples} samples{where}); history never pushed a node further, so a "
                "load test can find the real limit"
            )
        return (
            f"capacity_per_node ≈ {self.capacity:.4g} req/s{packing}: the SLO ({self.slo}) held up to that load "
            f"per node and broke from {self.broke_at:.4g} req/s ({self.samples} samples{where})"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "capacity_per_node": self.capacity,
            "bound": self.bound,
            "slo": self.slo,
            "samples": self.samples,
            "broke_at": self.broke_at,
            "source": self.source,
            "best_workers": self.best_workers,
            "by_workers": {str(k): v for k, v in self.by_workers.items()},
            "bins": [b.__dict__ for b in self.bins],
            "summary": self.sentence(),
        }


def from_history(
    per_node: NDArray[np.float64],
    metric: NDArray[np.float64],
    threshold: float,
    *,
    slo: str,
    hold_share: float = 0.95,
    bins: int = 20,
    min_per_bin: int = 5,
    source: str = "",
) -> CapacityEstimate:
    """The estimate from paired samples (see the module docstring). Non-finite pairs and idle samples (no
    load, no nodes) are dropped first."""
    x = np.asarray(per_node, dtype=np.float64)
    y = np.asarray(metric, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    x, y = x[keep], y[keep]
    if len(x) < min_per_bin:
        return CapacityEstimate(None, "none", slo, len(x), source=source)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    count = max(1, min(bins, len(x) // min_per_bin))
    edges = np.linspace(0, len(x), count + 1).round().astype(int)
    out: list[LoadBin] = []
    for lo, hi in itertools.pairwise(edges.tolist()):
        xs, ys = x[lo:hi], y[lo:hi]
        held = float(np.mean(ys <= threshold))
        out.append(
            LoadBin(
                float(xs[0]), float(xs[-1]), len(xs), held, float(np.median(ys)), float(ys.max()), held >= hold_share
            )
        )
    first_bad = next((i for i, b in enumerate(out) if not b.holds), None)
    if first_bad is None:
        return CapacityEstimate(out[-1].high, "at_least", slo, len(x), out, source=source)
    if first_bad == 0:
        return CapacityEstimate(None, "none", slo, len(x), out, broke_at=out[0].low, source=source)
    return CapacityEstimate(out[first_bad - 1].high, "limit", slo, len(x), out, out[first_bad].low, source=source)


@dataclass(frozen=True)
class LoadStep:
    """One row of a load test on one node."""

    rps: float
    latency: float
    error_rate: float = 0.0
    workers: int | None = None


def from_load_test(
    steps: list[LoadStep], threshold: float, *, slo: str, max_error_rate: float = 0.01, source: str = ""
) -> CapacityEstimate:
    """Per workers setting, the highest offered rate before the first step that broke the SLO (latency above
    the threshold or errors above ``max_error_rate``); the best packing is the one with the highest capacity."""
    groups: dict[int | None, list[LoadStep]] = {}
    for step in steps:
        groups.setdefault(step.workers, []).append(step)
    by_workers: dict[int | None, float | None] = {}
    broke: dict[int | None, float | None] = {}
    for workers, rows in groups.items():
        best: float | None = None
        broke[workers] = None
        for row in sorted(rows, key=lambda r: r.rps):
            if row.latency > threshold or row.error_rate > max_error_rate:
                broke[workers] = row.rps
                break
            best = row.rps
        by_workers[workers] = best
    known = {w: c for w, c in by_workers.items() if c is not None}
    if not known:
        return CapacityEstimate(None, "none", slo, len(steps), source=source)
    winner = max(known, key=lambda w: (known[w], -(w or 0)))
    capacity = known[winner]
    bound: Bound = "limit" if broke[winner] is not None else "at_least"
    return CapacityEstimate(
        capacity,
        bound,
        slo,
        len(steps),
        broke_at=broke[winner],
        source=source,
        by_workers={w: c for w, c in by_workers.items() if w is not None},
        best_workers=winner,
    )
