"""wiring.Predictors: one model per pool for the life of the process (a seasonal model keeps its fit between
refits), a new one when the pool's lead time changes; FitSlots: at most one forecast per core at once. And the
CLI's one BLAS thread per fit, unless the environment says otherwise."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from autoscaler.cli import main as cli_main
from autoscaler.core.clock import ManualClock
from autoscaler.core.nodes import LeadTime
from autoscaler.core.series import RateSeries
from autoscaler.wiring import FitSlots, Predictors
from predictor.base import Forecast
from tests.helpers import T0, make_config, pool_dict


class Leads:
    def __init__(self) -> None:
        self.seconds = 600.0

    def of(self, pool: Any, now: Any) -> LeadTime:
        return LeadTime(self.seconds, "configured")


def test_one_model_per_pool_until_its_lead_time_changes() -> None:
    cfg = make_config(pool_dict("ocr"), pool_dict("asr"))
    leads = Leads()
    predictors = Predictors(cfg, leads, ManualClock(T0))  # type: ignore[arg-type]
    ocr, asr = cfg.pool("ocr"), cfg.pool("asr")
    first = predictors(ocr)
    assert isinstance(first, FitSlots) and predictors(ocr).inner is first.inner
    assert predictors(asr).inner is not first.inner
    leads.seconds = 900.0  # lead_time: auto learned a longer boot: the model is calibrated for it anew
    assert predictors(ocr).inner is not first.inner


class Held:
    name = "held"

    def __init__(self, parties: int) -> None:
        self.running = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(parties, timeout=30)

    def history_seconds(self) -> float:
        return 3600.0

    def forecast(self, history: RateSeries, now: float, horizon_s: float) -> Forecast:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.barrier.wait()  # the forecasts that got a slot meet here: they run at the same time
        with self.lock:
            self.running -= 1
        return Forecast(1.0, 1.0, horizon_s, "held")


def test_at_most_one_forecast_per_slot_at_once() -> None:
    slots = threading.BoundedSemaphore(2)
    model = Held(parties=2)
    wrapped = FitSlots(model, slots)  # type: ignore[arg-type]
    empty = RateSeries.from_lists([], [], 60.0)
    threads = [threading.Thread(target=wrapped.forecast, args=(empty, 0.0, 60.0)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert model.peak == 2 and wrapped.name == "held" and wrapped.history_seconds() == 3600.0


def test_the_cli_asks_for_one_blas_thread_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in cli_main.BLAS_THREADS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    cli_main.one_blas_thread()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "4"


def test_skipped_pools_are_in_the_json_report() -> None:
    import json

    from autoscaler.cli.output import report_json
    from autoscaler.core.report import PoolOutcome, TickReport

    report = TickReport(T0, (PoolOutcome("ocr", "failed", None, error="skipped"),), skipped=("ocr",))
    assert json.loads(report_json(report))["skipped"] == ["ocr"]
