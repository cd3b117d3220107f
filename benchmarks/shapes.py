"""Synthetic traffic shapes for checking that the policy generalises (fixed seeds: every run is the same).

None of these was fitted to a trace, and no constant of forescale was chosen on them: they stand in for the
kinds of traffic issue 21 names, so a change that helps the bundled traces can be seen to help (or hurt)
traffic it was not looked at on. Every shape is in req/s on 5-minute samples and starts at a UTC midnight,
so a replay begins at night with no history (a pool's first day is part of the score).

- ``diurnal_web``: a web service's day — a trough at 15 % of the peak around 04:00 UTC, a peak hour that
  wanders between 13:00 and 19:00 from day to day, weekends at 60 % of weekdays, a slow level drift of
  ±20 % over the month, 10 % multiplicative noise; 28 days.
- ``spike_then_calm``: a diurnal pool whose daily peak needs about a fifth of the trace's peak, then a two-day
  event at 4–5× that level (its own daily shape, and chaotic: 40 % noise against 10 % on calm days), then nine
  calm days at the old level; 14 days. A floor or a multiplier learned in the event must be forgotten within
  about a day of it.
- ``sports_events``: a diurnal base plus matches on about two days in three (one to three a day, two hours
  each, at 13:00–21:00): traffic ramps to 1.5–3.5× the base within 10–20 minutes, goal surges of 1.2–1.8×
  rise within one sample and last 5–15 minutes, and the match decays over half an hour; one final at 4×; 28 days.
- ``social_volume``: heavy-tailed social-media volume — a weak daily cycle, a log-level that wanders (an
  Ornstein–Uhlenbeck process with a one-day memory), 15 % noise, and about three bursts a day whose size is
  Pareto-distributed (most 1.5–3×, a few up to 8×), rising within a sample or two and decaying over 20 minutes
  to 2 hours; 28 days.
- ``spiky_social``: a quiet, noisy base (30 % noise) with one spike a day of 4–15× lasting 5–30 minutes, at
  a random time (news about a ticker): standing capacity for the spikes costs many times the oracle; 28 days.
"""

from __future__ import annotations

import numpy as np

from predictor.trace import Trace

DAY = 86400.0
STEP = 300.0
T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z, a Monday


def _grid(days: float) -> np.ndarray:
    return T0 + STEP * np.arange(int(days * DAY / STEP))


def _trace(name: str, t: np.ndarray, rps: np.ndarray) -> Trace:
    return Trace(name, t, np.round(np.maximum(rps, 0.0) * STEP), STEP)


def _bump(hours: np.ndarray, peak_hour: float, trough: float) -> np.ndarray:
    """A smooth daily shape between ``trough`` and 1, highest at ``peak_hour``."""
    return trough + (1.0 - trough) * (0.5 + 0.5 * np.cos(2 * np.pi * (hours - peak_hour) / 24.0)) ** 2


def diurnal_web(days: int = 28, seed: int = 101) -> Trace:
    rng = np.random.default_rng(seed)
    t = _grid(days)
    day = ((t - T0) // DAY).astype(int)
    hours = (t % DAY) / 3600.0
    peak_hour = rng.uniform(13.0, 19.0, days + 1)[day]
    shape = _bump(hours, peak_hour, 0.15)
    weekend = np.where(day % 7 >= 5, 0.6, 1.0)
    drift = np.exp(0.2 * np.sin(2 * np.pi * (t - T0) / (days * DAY) + rng.uniform(0, 2 * np.pi)))
    rps = 200.0 * shape * weekend * drift * rng.lognormal(0.0, 0.1, t.shape[0])
    return _trace("diurnal_web", t, rps)


def spike_then_calm(days: int = 14, seed: int = 102) -> Trace:
    rng = np.random.default_rng(seed)
    t = _grid(days)
    hours = (t % DAY) / 3600.0
    base = 40.0 * _bump(hours, 15.0, 0.3)
    event = (t >= T0 + 3 * DAY) & (t < T0 + 5 * DAY)
    factor = np.where(event, rng.uniform(4.0, 5.0), 1.0)
    noise = np.where(event, 0.4, 0.1)  # the event is chaotic: bursts the model cannot see coming
    rps = base * factor * rng.lognormal(0.0, noise, t.shape[0])
    return _trace("spike_then_calm", t, rps)


def sports_events(days: int = 28, seed: int = 103) -> Trace:
    rng = np.random.default_rng(seed)
    t = _grid(days)
    hours = (t % DAY) / 3600.0
    base = 50.0 * _bump(hours, 18.0, 0.2)
    mult = np.ones(t.shape[0])
    n = t.shape[0]
    per_hour = round(3600.0 / STEP)
    final_day = days - 2
    for d in range(days):
        if d != final_day and rng.random() > 0.65:
            continue
        starts = rng.choice([13.0, 15.0, 17.0, 19.0, 21.0], size=int(rng.integers(1, 4)), replace=False)
        if d == final_day:
            starts = np.array([19.0])
        for h in starts:
            i0 = int((d * DAY + (h + rng.uniform(-0.25, 0.25)) * 3600.0) // STEP)
            height = 4.0 if d == final_day else rng.uniform(1.5, 3.5)
            ramp = max(2, round(rng.uniform(600.0, 1200.0) / STEP))
            length = 2 * per_hour
            decay = per_hour // 2
            profile = np.concatenate(
                (
                    np.linspace(1.0, height, ramp + 1)[1:],
                    np.full(length - ramp, height),
                    height * (1.0 / height) ** (np.arange(1, decay + 1) / decay),
                )
            )
            for _ in range(int(rng.poisson(2.5))):  # goals: a surge within one sample
                g = int(rng.integers(ramp, length))
                glen = max(1, round(rng.uniform(300.0, 900.0) / STEP))
                profile[g : g + glen] = np.maximum(profile[g : g + glen], height * rng.uniform(1.2, 1.8))
            end = min(n, i0 + profile.shape[0])
            mult[i0:end] = np.maximum(mult[i0:end], profile[: end - i0])
    rps = base * mult * rng.lognormal(0.0, 0.08, n)
    return _trace("sports_events", t, rps)


def social_volume(days: int = 28, seed: int = 104) -> Trace:
    rng = np.random.default_rng(seed)
    t = _grid(days)
    n = t.shape[0]
    hours = (t % DAY) / 3600.0
    tau = DAY / STEP  # one day of memory, in samples
    ou = np.zeros(n)
    shocks = rng.normal(0.0, 0.3 * np.sqrt(2.0 / tau), n)
    for i in range(1, n):
        ou[i] = ou[i - 1] * (1.0 - 1.0 / tau) + shocks[i]
    level = 80.0 * _bump(hours, 16.0, 0.5) * np.exp(ou)
    bursts = np.ones(n)
    for _ in range(int(rng.poisson(3.0 * days))):
        i0 = int(rng.integers(0, n))
        size = min(8.0, 1.0 + 0.5 * (rng.pareto(1.5) + 1.0))  # most 1.5–3×, a heavy tail up to 8×
        rise = int(rng.integers(1, 3))
        decay_s = rng.uniform(1200.0, 7200.0)
        k = np.arange(n - i0)
        shape = 1.0 + (size - 1.0) * np.where(k < rise, (k + 1) / rise, np.exp(-(k - rise) * STEP / decay_s))
        bursts[i0:] = np.maximum(bursts[i0:], shape)
    rps = level * bursts * rng.lognormal(0.0, 0.15, n)
    return _trace("social_volume", t, rps)


def spiky_social(days: int = 28, seed: int = 105) -> Trace:
    rng = np.random.default_rng(seed)
    t = _grid(days)
    n = t.shape[0]
    hours = (t % DAY) / 3600.0
    rps = 10.0 * _bump(hours, 15.0, 0.6) * rng.lognormal(0.0, 0.3, n)
    for _ in range(days):
        i0 = int(rng.integers(0, n))
        length = max(1, round(rng.uniform(300.0, 1800.0) / STEP))
        rps[i0 : i0 + length] *= rng.uniform(4.0, 15.0)
    return _trace("spiky_social", t, rps)


SHAPES = {
    "diurnal_web": diurnal_web,
    "spike_then_calm": spike_then_calm,
    "sports_events": sports_events,
    "social_volume": social_volume,
    "spiky_social": spiky_social,
}


def write_csv(trace: Trace, path: str) -> None:
    """The trace as a ``timestamp,requests`` CSV (what ``forescale backtest --trace`` reads)."""
    from datetime import UTC, datetime

    with open(path, "w", encoding="utf-8") as fh:
        fh.write("timestamp,requests\n")
        for ti, r in zip(trace.t, trace.requests, strict=True):
            fh.write(f"{datetime.fromtimestamp(float(ti), UTC):%Y-%m-%dT%H:%M:%SZ},{int(r)}\n")
