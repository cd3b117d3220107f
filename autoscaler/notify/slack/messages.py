"""What to tell Slack, and how: the Block Kit + text of each message (which failures to announce: alerts.py).

Pure code (no I/O): the notifier feeds it TickReports and Events and posts the SlackMessages it returns.
All user-controlled text (reasons, override notes, Nomad errors) is mrkdwn-escaped, so an override reason
such as ``<!channel>`` can never ping a channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from autoscaler.core.decision import Decision
from autoscaler.core.durations import format_duration
from autoscaler.core.report import Event, PoolOutcome
from autoscaler.core.settings.forescale import Config, PoolConfig
from autoscaler.core.text import safe_multiline, strip_userinfo
from autoscaler.notify.alerts import Alert, Problem, Recovery, TickDigest, large_scale_in

MessageKind = Literal["tick", "event", "test"]

MAX_BLOCKS = 50  # Slack's limit per message
SECTION_MAX = 3000
HEADER_MAX = 150
TEXT_MAX = 3900  # Slack truncates longer top-level text in notifications
OVERRIDE_CODES = ("schedule_floor", "schedule_ceiling", "manual_floor", "manual_ceiling", "manual_pin")


@dataclass(frozen=True)
class SlackMessage:
    """One Slack message: fallback ``text`` + Block Kit ``blocks``; ``rearm`` lists the alerts it carries."""

    kind: MessageKind
    text: str
    blocks: tuple[dict[str, Any], ...]
    rearm: tuple[tuple[str, str], ...] = ()  # (pool, signature): announce again if delivery fails

    def payload(self, channel: str | None = None) -> dict[str, Any]:
        """The JSON body: chat.postMessage wants ``channel``; an incoming webhook has its own."""
        body: dict[str, Any] = {"text": self.text, "blocks": list(self.blocks)}
        if channel is not None:
            body = {"channel": channel, **body}
        return body


# -- formatting -------------------------------------------------------------------------------------------


def esc(text: str) -> str:
    """Untrusted text for Slack: mrkdwn control characters (links, mentions) escaped, URL credentials redacted,
    terminal control characters removed (newlines are kept: Slack shows them as line breaks)."""
    text = safe_multiline(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _delta(d: Decision) -> str:
    diff = d.desired - d.current
    return f"{diff:+d}"


def _arrow(d: Decision) -> str:
    return {"up": ":arrow_up:", "down": ":arrow_down:"}.get(d.action, ":left_right_arrow:")


def _since(since: datetime, now: datetime) -> str:
    span = format_duration(timedelta(seconds=max(0, round((now - since).total_seconds() / 60) * 60)))
    return f"since {since:%H:%M} UTC, {span}"


def _event_emoji(kind: str) -> str:
    k = kind.lower()
    if "unplaceable" in k:
        return ":warning:"
    if k == "queue_backlog_at_max":  # policy/queue.py: forescale can add no node
        return ":rotating_light:"
    if k in ("pool_placed", "queue_backlog_drained"):
        return ":white_check_mark:"
    if "expir" in k:
        return ":hourglass:"
    if any(w in k for w in ("clear", "delete", "remove", "cancel")):
        return ":wastebasket:"
    if any(w in k for w in ("set", "create", "add")):
        return ":pushpin:"
    return ":information_source:"


def _event_label(kind: str) -> str:
    return kind.replace("_", " ").replace(".", " ")


class MessageFormatter:
    """Turns digests and events into SlackMessages; knows the config for Nomad UI links."""

    def __init__(self, config: Config, mention: str | None = None) -> None:
        self.config = config
        self.mention = mention

    # -- links --------------------------------------------------------------------------------------------
    def job_url(self, pool_name: str) -> str | None:
        """Nomad UI page of the pool's task group, when ``nomad.ui_url`` is configured."""
        base = self.config.nomad.ui_url
        pool = next((p for p in self.config.pools if p.name == pool_name), None)
        if not base or pool is None:
            return None
        base = strip_userinfo(base).rstrip("/")  # a link in a channel never carries credentials
        if not base.endswith("/ui"):
            base += "/ui"
        job = quote(f"{pool.nomad.job}@{self.config.nomad.namespace}", safe="@")
        return f"{base}/jobs/{job}/{quote(pool.nomad.group, safe='')}"

    def _job_link(self, pool_name: str) -> str | None:
        url = self.job_url(pool_name)
        pool = next((p for p in self.config.pools if p.name == pool_name), None)
        if url is None or pool is None:
            return None
        return f"<{url}|Nomad: {pool.nomad.job}/{pool.nomad.group}>"

    # -- tick ---------------------------------------------------------------------------------------------
    def tick(self, dig: TickDigest) -> SlackMessage | None:
        """One message for the whole tick; None when there is nothing to say."""
        if dig.empty:
            return None
        phrases: list[str] = []
        lines: list[str] = []
        items: list[list[Block]] = []
        for o in dig.changes:
            d = o.decision
            assert d is not None
            large = self._large(d)
            phrases.append(f"{d.pool} {d.current} → {d.desired}" + (" (large scale-in)" if large else ""))
            warn = f"LARGE SCALE-IN{large.removeprefix('large scale-in')}: " if large else ""  # "LARGE SCALE-IN: −27 …"
            lines.append(f"{warn}{d.pool}: {d.current} → {d.desired} nodes ({_delta(d)}): " + esc(_main_reason(d)))
            items.append(self._change_blocks(o, d))
        for o in dig.would_scale:
            d = o.decision
            assert d is not None
            phrases.append(f"{d.pool} would scale {d.current} → {d.desired} (shadow)")
            lines.append(
                f"{d.pool}: would scale {d.current} → {d.desired} nodes ({_delta(d)}), shadow, Nomad not changed: "
                + esc(_main_reason(d))
            )
            items.append(self._change_blocks(o, d))
        mention_used = False
        for a in dig.alerts:
            phrases.append(f"{a.outcome.pool} {_problem_word(a.problems)}")
            body = self._alert_text(a, dig.at)
            prefix = ""
            if self.mention and not mention_used:
                prefix, mention_used = self.mention + " ", True
            lines.append(prefix + f"{a.outcome.pool}: {body}")
            items.append([_section(f"{prefix}{_alert_emoji(a.problems)} *{a.outcome.pool}* {body}")])
        for r in dig.recoveries:
            phrases.append(f"{r.outcome.pool} recovered")
            body = self._recovery_text(r, dig.at)
            lines.append(f"{r.outcome.pool}: {body}")
            items.append([_section(f":white_check_mark: *{r.outcome.pool}* {body}")])
        for e in dig.events:
            phrases.append(f"{_event_label(e.kind)} ({e.pool})")
            lines.append(_event_text(e))
            items.append([_section(_event_line(e))])
        header = clip("forescale: " + ", ".join(phrases), HEADER_MAX)
        footer = _context([f"forescale · tick at {dig.at:%Y-%m-%d %H:%M} UTC"])
        blocks = _fit([HeaderBlock(text=header)], items, footer)
        text = clip("\n".join([esc(header), *lines]), TEXT_MAX)
        rearm = tuple((a.outcome.pool, a.signature) for a in dig.alerts)
        return SlackMessage("tick", text, blocks, rearm)

    def _large(self, d: Decision) -> str | None:
        slack = self.config.slack
        if slack is None:
            return large_scale_in(d, self._pool(d.pool))
        share = slack.large_scale_in_pct / 100
        return large_scale_in(d, self._pool(d.pool), min_nodes=slack.large_scale_in_nodes, min_share=share)

    def _pool(self, name: str) -> PoolConfig | None:
        return next((p for p in self.config.pools if p.name == name), None)

    def _change_blocks(self, o: PoolOutcome, d: Decision) -> list[Block]:
        head = f"{_arrow(d)} *{d.pool}*  {d.current} → {d.desired} nodes ({_delta(d)})"
        if o.status == "shadow":
            head = f":ghost: *{d.pool}*  would scale {d.current} → {d.desired} nodes ({_delta(d)})"
            head += " · shadow: Nomad not changed"
        large = self._large(d) if o.status == "applied" else None
        if large is not None:
            head = f":rotating_light: *{esc(large.capitalize())}*\n" + head
        bullets = [("• :pushpin: " if r.code in OVERRIDE_CODES else "• ") + esc(r.message) for r in d.reasons]
        facts = []
        if d.placed is not None:
            facts.append(f"nodes: {d.counts()}")
        if d.forecast_rps is not None:
            facts.append(f"forecast *{d.forecast_rps:.1f} rps*" + (" (degraded)" if d.degraded else ""))
        if d.observed_rps is not None:
            facts.append(f"observed *{d.observed_rps:.1f} rps*")
        if d.model:
            facts.append(f"model {esc(d.model)}")
        overrides = [r for r in d.reasons if r.code in OVERRIDE_CODES]
        if overrides:
            facts.append("override: " + esc(", ".join(r.code for r in overrides)))
        link = self._job_link(d.pool)
        if link:
            facts.append(link)
        if o.note:
            facts.append(esc(o.note))
        if o.nodes is not None and not o.nodes.error:
            facts.append(esc(o.nodes.summary()))
        blocks: list[Block] = [_section(head + "\n" + "\n".join(bullets))]
        if facts:
            blocks.append(_context([" · ".join(facts)]))
        return blocks

    def _alert_text(self, a: Alert, now: datetime) -> str:
        d = a.outcome.decision
        parts = []
        for p in a.problems:
            if p.kind == "held":
                count = d.current if d is not None else "?"
                parts.append(f"held at {count} nodes: metrics unavailable ({esc(p.cause)}); never scaled in blind")
            elif p.kind == "degraded":
                count = d.desired if d is not None else "?"
                parts.append(f"degraded forecast: {esc(p.cause)}; {count} nodes, never scaled in on it")
            elif p.cause.startswith("machines: "):
                count = f"the count is {d.desired}; " if d is not None else ""
                parts.append(f"{esc(p.cause)} ({count}machines not shrunk on an error)")
            elif d is None:
                parts.append(f"failed: {esc(p.cause)}")
            elif p.kind == "deferred":
                parts.append(f"{d.current} → {d.desired} deferred by Nomad: {esc(p.cause)}")
            else:
                parts.append(f"{d.current} → {d.desired} not applied: {esc(p.cause)}")
        tail = {"new": "", "changed": " _(cause changed)_", "repeat": f" _(still failing, {_since(a.since, now)})_"}
        link = self._job_link(a.outcome.pool)
        return "; ".join(parts) + tail[a.state] + (f" · {link}" if link else "")

    def _recovery_text(self, r: Recovery, now: datetime) -> str:
        was = "; ".join(f"{p.kind}: {esc(p.cause)}" for p in r.problems)
        d = r.outcome.decision
        now_text = ""
        if d is not None:
            now_text = f"; now {d.current} → {d.desired} nodes" if d.changed else f"; now at {d.current} nodes"
        span = format_duration(timedelta(seconds=max(0, round((now - r.since).total_seconds() / 60) * 60)))
        return f"recovered after {span} (was {was}){now_text}"

    # -- outside a tick ----------------------------------------------------------------------------------
    def event(self, event: Event) -> SlackMessage:
        """One sentence ("alice pinned ocr to 40 until 18:00 UTC: Diwali campaign"), then a context line."""
        text = f"forescale: {_event_text(event)}"
        facts = [f"forescale · {_event_label(event.kind)} · {event.at:%Y-%m-%d %H:%M} UTC"]
        ident = event.details.get("id")
        if ident:
            facts.append(f"id {esc(str(ident))}")
        link = self._job_link(event.pool)
        if link:
            facts.append(link)
        blocks = [
            _section(_event_line(event)),
            _context([" · ".join(facts)]),
        ]
        return SlackMessage("event", clip(text, TEXT_MAX), tuple(b.to_dict() for b in blocks))

    def test(self, host: str, at: datetime, where: str) -> SlackMessage:
        pools = ", ".join(p.name for p in self.config.pools)
        text = f"forescale test message from {esc(host)}: scaling changes of {pools} will be posted here."
        blocks = [
            _section(
                f":wave: *forescale test message* from `{esc(host)}`\nScaling changes of *{pools}* will be posted here."
            ),
            _context([f"sent {at:%Y-%m-%d %H:%M:%S} UTC by `forescale notify test` to {esc(where)}"]),
        ]
        return SlackMessage("test", text, tuple(b.to_dict() for b in blocks))


def _event_line(e: Event) -> str:
    if _is_sentence(e):
        return f"{_event_emoji(e.kind)} {esc(e.message)}"
    return f"{_event_emoji(e.kind)} *{esc(_event_label(e.kind))}* · *{esc(e.pool)}*: {esc(e.message)}"


def _event_text(e: Event) -> str:
    return esc(e.message) if _is_sentence(e) else f"{_event_label(e.kind)} ({e.pool}): {esc(e.message)}"


def _is_sentence(e: Event) -> bool:
    """Override changes are whole sentences naming the pool ("alice pinned ocr to 40 …"); other events (node
    actions, store warnings) need their kind and pool in front."""
    return e.kind.startswith("override_") and e.kind != "override_store_unreadable"


def _main_reason(d: Decision) -> str:
    """The reason that set the final count: the last clamp/override that gave it, else forecast or observed."""
    for r in reversed(d.reasons):
        if r.code not in ("forecast", "observed") and r.nodes == d.desired:
            return r.message
    for code in ("forecast", "observed"):
        for r in d.reasons:
            if r.code == code and r.nodes == d.desired:
                return r.message
    return d.reasons[-1].message if d.reasons else ""


def _problem_word(problems: tuple[Problem, ...]) -> str:
    return "+".join(p.kind for p in problems)


def _alert_emoji(problems: tuple[Problem, ...]) -> str:
    kinds = {p.kind for p in problems}
    if "failed" in kinds:
        return ":x:"
    if "deferred" in kinds:
        return ":hourglass_flowing_sand:"
    return ":warning:"


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, SECTION_MAX)))


def _context(texts: list[str]) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(t, SECTION_MAX)) for t in texts[:10]])


def _fit(head: list[Block], items: list[list[Block]], footer: Block) -> tuple[dict[str, Any], ...]:
    """Keep within Slack's 50 blocks: whole items while they fit, then a '…and N more' line."""
    blocks = list(head)
    budget = MAX_BLOCKS - len(head) - 2  # footer + a possible "more" line
    shown = 0
    for item in items:
        if len(item) > budget:
            break
        blocks.extend(item)
        budget -= len(item)
        shown += 1
    if shown < len(items):
        blocks.append(_context([f"…and {len(items) - shown} more (see the audit log)"]))
    blocks.append(footer)
    return tuple(b.to_dict() for b in blocks)
