"""When does an override change take effect? `override set/clear` ask the daemon of this config (its /healthz on
``daemon.listen_host:listen_port``) and, unless told not to wait, wait until it has ticked the pool.

A daemon watching the same store ticks the pool within ``daemon.override_poll`` of the change (or at once with
the Nomad Variables store). Without a daemon, the change applies at the next `forescale tick` (cron, or a Nomad
periodic job). Only stdlib HTTP here: the CLI stays light.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

PROBE_TIMEOUT_S = 0.5
POLL_S = 0.2

Health = Callable[[], dict[str, Any] | None]


@dataclass(frozen=True)
class Effect:
    """What to tell the user: ``text`` (one line) and whether the daemon confirmed the tick (``confirmed``)."""

    text: str
    confirmed: bool = False


def daemon_url(host: str, port: int) -> str | None:
    """The daemon's /healthz URL, or None when its port is chosen at start (0) and cannot be known."""
    if port == 0:
        return None
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def http_health(url: str) -> Health:
    """A function reading the daemon's /healthz JSON (200 or 503), None when nothing answers there."""

    def read() -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as resp:
                body = resp.read()
        except urllib.error.HTTPError as err:  # 503: unhealthy, but it answers
            body = err.read()
        except (OSError, ValueError):
            return None
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    return read


def takes_effect(
    health: Health | None,
    where: str,
    store: str,
    pools: list[str],
    since: datetime,
    wait_s: float,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> Effect:
    """Say when the change to ``pools`` (written before ``since``) takes effect, waiting up to ``wait_s`` for the
    daemon to tick them. ``health`` reads the daemon's /healthz (None: no address to ask)."""
    later = "at the next `forescale tick` (cron or a Nomad periodic job)"
    if health is None:
        return Effect(f"takes effect {later}, or within seconds in a running `forescale run` ({where})")
    doc = health()
    if doc is None:
        return Effect(f"takes effect {later}: no `forescale run` answers at {where}")
    watch = doc.get("overrides") or {}
    if watch.get("store") != store:
        seen = watch.get("store") or "no override store"
        return Effect(f"takes effect {later}: the daemon at {where} watches {seen}, not {store}")
    how = "at once" if not watch.get("poll_s") else f"within {watch['poll_s']:g}s"
    if wait_s <= 0:
        return Effect(f"the daemon at {where} watches {store} and ticks {', '.join(pools)} {how}")
    deadline = monotonic() + wait_s
    while True:
        done = _ticked(doc, pools, since)
        if done is not None:
            return Effect(f"in effect: {done}", confirmed=True)
        if monotonic() >= deadline:
            return Effect(
                f"the daemon at {where} watches {store} ({how}) but has not ticked {', '.join(pools)} within "
                f"{wait_s:g}s; see its log"
            )
        pause(POLL_S)
        doc = health() or {}


def _ticked(doc: dict[str, Any], pools: list[str], since: datetime) -> str | None:
    """"the daemon ticked ocr at 12:00:03 UTC: 12 → 40 (applied)" once every pool has a tick after ``since``."""
    states = doc.get("pools") or {}
    parts = []
    for pool in pools:
        state = states.get(pool) or {}
        try:
            at = datetime.fromisoformat(str(state.get("last_tick")))
        except ValueError:
            return None
        if at < since:
            return None
        current, desired, status = state.get("current"), state.get("desired"), state.get("status")
        if status == "shadow":
            counts = f"would scale {current} → {desired} (shadow: Nomad not changed)"
        elif current is None:
            counts = f"{status}: {state.get('error')}"
        elif current == desired:
            counts = f"stays at {current} ({status})"
        else:
            counts = f"{current} → {desired} ({status})"
        parts.append(f"the daemon ticked {pool} at {at:%H:%M:%S} UTC: {counts}")
    return "; ".join(parts)
