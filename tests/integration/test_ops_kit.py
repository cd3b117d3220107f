"""The ops kit against the real thing: a real `forescale run` daemon (fake Nomad and Slack over HTTP) whose
pools query a real Prometheus backfilled with the NASA trace shifted to end now (and carried on live by a
loopback exporter, so the data never goes stale however long the test runs); the same Prometheus scrapes
the daemon's /metrics every second and evaluates contrib/prometheus/alerts.yml. Then every query of
contrib/grafana/forescale.json must parse and return series, every alert rule must evaluate without error,
and the alerts must fire for the faults the scenario contains (a pool whose job is gone, a pool whose
query returns nothing) and for nothing else.

The scenario makes every panel meaningful: pool ``web`` is pinned by a manual override, ``api`` is held to
its pool max, ``gone`` fails in Nomad every tick, ``dark`` is held on missing metrics, ``preview`` runs in
shadow (decides, never applies), ``ocr`` is queue-fed (its backlog query reads the trace's rate × 600 s as a
stand-in backlog gauge: far beyond its 3 s SLO, so its wait-beyond-SLO alert is pending), and Slack answers the
first message with a rate limit and then ``channel_not_found`` (an error and a retry to count).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import REPO
from tests.conftest import require_service
from tests.fakes.nomad import FakeNomad
from tests.fakes.slack import FakeSlack, Scripted, rate_limited
from tests.fixtures.prometheus import NASA_QUERY, nasa_series_ending_now
from tests.fixtures.prometheus_server import LiveCounters, PrometheusStartError, binaries_missing, running_prometheus
from tests.helpers import free_port

DASHBOARD = REPO / "contrib" / "grafana" / "forescale.json"
INVENTORY = REPO / "scripts" / "nodes" / "inventory"
ALERTS = REPO / "contrib" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "contrib" / "prometheus" / "alerts.test.yml"
WEB_QUERY = NASA_QUERY
# Grafana's variables as "All" and its interval macros, for running the panel queries directly.
GRAFANA_VARS = {"$pool": ".*", "$instance": ".*", "$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
DEADLINE_S = 60.0  # every wait below is bounded by this


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if binaries_missing():
        require_service("prometheus", "promtool is not on PATH (Debian package 'prometheus')")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


def rule_names() -> list[str]:
    """Every alert of alerts.yml, read from the file (so a new rule is counted without editing the tests)."""
    return [r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rule_names())} rules found" in checked.stdout
    # Every rule has at least one unit test that expects it to fire.
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {c["alertname"] for t in tests for c in t.get("alert_rule_test", []) if c.get("exp_alerts")}
    assert set(rule_names()) <= fired, set(rule_names()) - fired
    tested = promtool("test", "rules", str(ALERT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "forescale" and dash["schemaVersion"] >= 36
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "instance", "pool"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    titles = " | ".join(p["title"] for p in dash["panels"])
    for wanted in ("Demand and capacity", "Nodes", "Overrides", "guards", "Tick duration", "Leader", "Slack", "Queue"):
        assert wanted in titles


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables substituted) for every target."""
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, f"unknown Grafana variable in {panel['title']}: {target['expr']}"
            out.append((panel["title"], expr))
    return out


def metric_names(text: str) -> set[str]:
    return set(re.findall(r"\bforescale_[a-z_]+\b", text))


# ---------------------------------------------------------------- the live scenario


@dataclass
class Live:
    prometheus: str
    daemon: subprocess.Popen[str]
    nomad: FakeNomad
    slack: FakeSlack
    inventory: Path

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.prometheus}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        return list(data["result"])

    def wait_until(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not condition():
            if self.daemon.poll() is not None:
                out = self.daemon.stdout.read() if self.daemon.stdout else ""
                pytest.fail(f"the daemon exited ({self.daemon.returncode}) while waiting for {what}:\n{out[-3000:]}")
            if time.monotonic() > deadline:
                slack = [(c.path, c.answered, c.body) for c in self.slack.requests][:5]
                metrics = [r["metric"] for r in self.query('{__name__=~"forescale_(notifier|tick).*"}')]
                pytest.fail(f"timed out after {DEADLINE_S:.0f}s waiting for {what}; Slack saw {slack}; {metrics}")
            threading.Event().wait(0.5)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    if binaries_missing():
        require_service("prometheus", "prometheus/promtool not on PATH (Debian package 'prometheus')")
    daemon_port = free_port()
    history = nasa_series_ending_now()
    with FakeNomad(max_delay_s=10.0) as nomad, FakeSlack() as slack, LiveCounters(history) as counters:
        scrape = (
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: [{json.dumps(str(ALERTS))}]\n"
            "scrape_configs:\n"
            f"  - job_name: forescale\n    static_configs: [{{targets: ['127.0.0.1:{daemon_port}']}}]\n"
            f"{counters.scrape_config()}"  # the trace carried on live, so its data never goes stale
        )
        jobs = (("ml-web", 3, 80), ("ml-api", 2, 4), ("ml-dark", 2, 10), ("ml-preview", 2, 40), ("ml-ocr", 2, 80))
        for job, count, top in jobs:
            nomad.add_job(job, groups={"workers": count}, scaling={"workers": (1, top)})
        # A pool whose machines follow its count (command provider, an on-prem inventory): two hosts are Nomad
        # nodes of node pool gpu, a third is active but never registers — reaped after boot_timeout (1s).
        inventory = tmp_path / "gpu-hosts.txt"
        inventory.write_text("gpu-a active\ngpu-b active\ngpu-c active\ngpu-d standby\n")
        for host in ("gpu-a", "gpu-b"):
            nomad.add_node(host, node_pool="gpu")
        nomad.add_job("ml-gpu", groups={"workers": 2}, scaling={"workers": (1, 4)})
        # NASA's rates are ~0.5 req/s: 0.05 req/s per node makes web want ~15 nodes (api's max of 4 binds).
        pool = {"capacity_per_node": 0.05, "min": 1, "lead_time": "10m"}
        prometheus_settings = {"url": "set once Prometheus runs", "timeout": "10s"}
        config: dict[str, Any] = {
            "prometheus": prometheus_settings,
            "nomad": {"address": nomad.address, "retries": 0, "timeout": "5s"},
            "audit_log": str(tmp_path / "audit.jsonl"),
            "overrides": {"path": str(tmp_path / "overrides.json")},
            # Ticks every 5s, each allowed the whole interval: six pools on a loaded 2-core machine.
            "daemon": {"listen_port": daemon_port, "interval": "5s", "tick_deadline": "5s"},
            "slack": {
                "channel": "C0123OPS",
                "base_url": slack.base_url,
                "timeout": "2s",
                "max_retry_time": "5s",
                "async_delivery": True,
            },
            "pools": [
                {"name": "web", "query": WEB_QUERY, "nomad": {"job": "ml-web", "group": "workers"}, **pool, "max": 80},
                {"name": "api", "query": WEB_QUERY, "nomad": {"job": "ml-api", "group": "workers"}, **pool, "max": 4},
                {"name": "gone", "query": WEB_QUERY, "nomad": {"job": "ml-gone", "group": "workers"}, **pool, "max": 9},
                {
                    "name": "preview",
                    "mode": "shadow",
                    "query": WEB_QUERY,
                    "nomad": {"job": "ml-preview", "group": "workers"},
                    **pool,
                    "max": 40,
                },
                {
                    "name": "ocr",
                    "query": WEB_QUERY,
                    "nomad": {"job": "ml-ocr", "group": "workers"},
                    **pool,
                    "max": 80,
                    "queue": {"backlog_query": f"{WEB_QUERY} * 600", "latency_slo": "3s"},
                },
                {
                    "name": "dark",
                    "query": 'sum(rate(http_requests_total{pool="none"}[5m]))',
                    "nomad": {"job": "ml-dark", "group": "workers"},
                    **pool,
                    "max": 10,
                },
                {
                    "name": "gpu",
                    "query": WEB_QUERY,
                    "nomad": {"job": "ml-gpu", "group": "workers"},
                    **pool,
                    "min": 2,
                    "max": 2,
                    "nodes": {
                        "provider": "command",
                        "node_pool": "gpu",
                        "boot_timeout": "1s",
                        "command": {"path": str(INVENTORY), "args": ["--file", str(inventory)]},
                    },
                },
            ],
        }
        try:
            with running_prometheus(history, tmp_path / "prometheus", config_text=scrape) as prom:
                prometheus_settings["url"] = prom.url
                path = tmp_path / "forescale.yaml"
                path.write_text(yaml.safe_dump(config))
                env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SLACK_BOT_TOKEN": slack.token}
                cli = [sys.executable, "-m", "autoscaler"]
                pinned = subprocess.run(
                    [*cli, "override", "set", "web", "--pin", "7", "--for", "2h", "-r", "ops kit", "-c", str(path)],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=60,
                )
                assert pinned.returncode == 0, pinned.stdout + pinned.stderr
                # The daemon's first message: rate limited, retried, then refused (a retry and an error to count).
                slack.script(
                    "/api/chat.postMessage",
                    rate_limited(0),
                    Scripted(200, {"ok": False, "error": "channel_not_found"}),
                )
                daemon = subprocess.Popen(
                    [*cli, "run", "--config", str(path)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                )
                try:
                    yield Live(prom.url, daemon, nomad, slack, inventory)
                finally:
                    daemon.terminate()  # our own child, by PID
                    try:
                        daemon.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        daemon.kill()
                        daemon.wait()
        except PrometheusStartError as exc:
            pytest.fail(f"could not start the test Prometheus: {exc}", pytrace=False)


def test_dashboard_and_alerts_work_on_a_live_daemon(live: Live) -> None:
    # Wait (bounded) until Prometheus has scraped several ticks, the Slack failure and the Nomad failures.
    live.wait_until("three ticks scraped", lambda: bool(live.query("sum(forescale_ticks_total) >= 3")))
    live.wait_until("a Slack error scraped", lambda: bool(live.query("forescale_notifier_errors_total")))
    live.wait_until(  # a pool's first decision can miss a scrape on a loaded machine: wait for all four
        "a decision of every pool scraped",
        lambda: (
            {"web", "api", "dark", "preview", "ocr"}
            <= {r["metric"].get("pool") for r in live.query("forescale_desired_nodes")}
        ),
    )
    live.wait_until(
        "ForescalePoolFailing to fire for pool gone",
        lambda: bool(live.query('ALERTS{alertname="ForescalePoolFailing", alertstate="firing"}')),
    )
    live.wait_until(
        "ForescaleMachineDead to fire for pool gpu (gpu-c never registered)",
        lambda: bool(live.query('ALERTS{alertname="ForescaleMachineDead", pool="gpu", alertstate="firing"}')),
    )

    # Every panel query parses and returns series.
    empty = [(title, expr) for title, expr in dashboard_queries() if not live.query(expr)]
    assert not empty, "panel queries without series:\n" + "\n".join(f"  {t}: {e}" for t, e in empty)
    # The variables' label_values queries find the pools and the instance.
    pools = live.api("label/pool/values", **{"match[]": 'forescale_desired_nodes{instance=~".*"}'})
    assert {"web", "api", "dark", "preview"} <= set(pools)
    assert live.api("label/instance/values", **{"match[]": "forescale_tick_interval_seconds"})

    # What the panels show is the scenario: the pin, the pool max, the hold, the capacity line.
    def value(expr: str) -> dict[str, float]:
        return {r["metric"].get("pool", ""): float(r["value"][1]) for r in live.query(expr)}

    reasons = {(r["metric"]["pool"], r["metric"]["reason"]) for r in live.query("forescale_decision_reason == 1")}
    assert {("web", "manual_pin"), ("api", "pool_max"), ("dark", "metrics_unavailable")} <= reasons
    assert value("forescale_desired_nodes")["web"] == 7.0 and value("forescale_desired_nodes")["api"] == 4.0
    assert value("forescale_pool_held") == {
        "web": 0.0, "api": 0.0, "dark": 1.0, "preview": 0.0, "gpu": 0.0, "ocr": 0.0
    }  # fmt: skip
    # The queue-fed pool: its backlog, the wait it means (beyond the 3 s SLO), the SLO line; only it has them.
    assert set(value("forescale_queue_backlog_messages")) == {"ocr"}
    assert value("forescale_queue_backlog_messages")["ocr"] > 0
    assert value("forescale_queue_wait_seconds")["ocr"] > value("forescale_queue_latency_slo_seconds")["ocr"] == 3.0
    assert value("forescale_queue_backlog_at_max") == {"ocr": 0.0}
    assert ("ocr", "queue_backlog") in reasons
    # The shadow pool decided a count but Nomad was never asked for it.
    assert value("forescale_pool_shadow")["preview"] == 1.0 and value("forescale_pool_shadow")["web"] == 0.0
    assert value("forescale_would_scale_nodes")["preview"] > 2
    assert live.nomad.group_count("ml-preview", "workers") == 2
    assert not live.nomad.requests_to("POST", "/v1/job/ml-preview/scale")
    assert value("forescale_node_capacity_rps")["web"] == 0.05
    placed = 'forescale_pool_nodes{state="placed"}'
    capacity = value(f"{placed} * on (instance, pool) forescale_node_capacity_rps")
    assert capacity["web"] == pytest.approx(0.05 * value(placed)["web"])
    assert set(value("forescale_pool_unplaceable").values()) == {0.0}
    assert 0 < value("forescale_observed_rps")["web"] < value("forescale_forecast_rps")["web"] * 10

    # The machines panels: gpu-c was reaped (the inventory put it on standby), the two nodes serve, and
    # scale-out backs off after a machine that never registered.
    machines = {r["metric"]["state"]: float(r["value"][1]) for r in live.query('forescale_pool_machines{pool="gpu"}')}
    assert machines["ready"] == 2.0 and machines["machines"] == 2.0 and machines["unregistered"] == 0.0
    assert "gpu-c standby" in live.inventory.read_text()
    assert value("forescale_pool_scale_out_backoff_until_seconds - time()")["gpu"] > 0
    problems = value('increase(forescale_node_problems_total{problem="no_node"}[1h])')
    assert problems["gpu"] > 0

    # Leader election is on by default: the only daemon took the Nomad Variables lock and acts.
    assert [float(r["value"][1]) for r in live.query("forescale_leader")] == [1.0]
    assert live.nomad.variable("forescale/leader") is not None

    # Every rule evaluates without error on the daemon's real series, and only the expected alerts are up.
    rules = [rule for group in live.api("rules")["groups"] for rule in group["rules"]]
    assert sorted(rule["name"] for rule in rules) == sorted(rule_names())
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken, broken
    alerts = {(a["labels"]["alertname"], a["labels"].get("pool"), a["state"]) for a in live.api("alerts")["alerts"]}
    assert ("ForescalePoolFailing", "gone", "firing") in alerts
    assert ("ForescalePoolHeld", "dark", "pending") in alerts  # `for: 5m` has not passed yet
    assert ("ForescaleQueueWaitBeyondSLO", "ocr", "pending") in alerts  # `for: 15m`
    expected = (
        "ForescalePoolFailing",
        "ForescalePoolHeld",
        "ForescaleSlackFailing",
        "ForescaleMachineDead",
        "ForescaleQueueWaitBeyondSLO",
    )
    unexpected = {a for a in alerts if a[0] not in expected}
    assert not unexpected, unexpected
    assert not any(name == "ForescalePoolFailing" and pool != "gone" for name, pool, _ in alerts)

    # Every forescale metric the dashboard and the alerts name is one the daemon exports.
    names = metric_names(DASHBOARD.read_text()) | metric_names(ALERTS.read_text())
    exported = set(live.api("label/__name__/values"))
    histogram = {n.removesuffix(s) for n in exported for s in ("_bucket", "_sum", "_count") if n.endswith(s)}
    missing = {n for n in names if n not in exported and n not in histogram}
    assert not missing, f"named in the ops kit but never exported: {sorted(missing)}"
