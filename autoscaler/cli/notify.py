"""`forescale notify test`: send one message and say exactly what Slack answered."""

from __future__ import annotations

import socket
from pathlib import Path

import typer
from rich.console import Console

from autoscaler.cli.common import ConfigOpt, clock_of
from autoscaler.core.errors import NotifierError
from autoscaler.core.text import markup_safe

notify_app = typer.Typer(help="Check the notifiers (Slack).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``forescale notify …`` to the main app."""
    app.add_typer(notify_app, name="notify")


@notify_app.command("test")
def notify_test(
    ctx: typer.Context,
    config: Path = ConfigOpt,
) -> None:
    """Post one test message to Slack and print what Slack answered (exit 1 on any error)."""
    from autoscaler.config import load_config
    from autoscaler.notify.slack.errors import fix_for
    from autoscaler.notify.slack.messages import MessageFormatter
    from autoscaler.notify.slack.transport import BotTransport, Delivery, make_transport

    out = Console(highlight=False, soft_wrap=True)
    cfg = load_config(config)
    if cfg.slack is None:
        out.print(f"[red]error[/]: no 'slack:' section in {markup_safe(config)}; add one (see docs/slack.md)")
        raise typer.Exit(1)
    try:
        target = cfg.slack.resolve()
    except NotifierError as exc:
        out.print(f"[red]error[/]: {markup_safe(str(exc))}")
        raise typer.Exit(1) from None
    transport = make_transport(target, cfg.slack)
    out.print(f"Slack ({target.mode}): posting to {markup_safe(target.describe())}")

    def report(step: str, d: Delivery, success: str) -> bool:
        retried = f" after {len(d.retries)} retries ({', '.join(sorted(set(d.retries)))})" if d.retries else ""
        if d.ok:
            out.print(f"{step}: [green]ok[/]{retried} — {markup_safe(success)}")
            return True
        status = f" (HTTP {d.status})" if d.status is not None else ""
        detail = f": {markup_safe(d.detail)}" if d.detail and d.detail != d.error else ""
        out.print(f"{step}: [red]error {markup_safe(d.error or 'unknown')}[/]{status}{retried}{detail}")
        out.print(f"fix: {markup_safe(fix_for(d.error, target, cfg.slack.base_url if cfg.slack else None))}")
        return False

    if isinstance(transport, BotTransport):
        auth = transport.auth_test()
        if not report("auth.test", auth, auth.detail):
            raise typer.Exit(1)
    message = MessageFormatter(cfg).test(socket.gethostname(), clock_of(ctx).now(), target.describe())
    sent = transport.post(message)
    step = "chat.postMessage" if target.mode == "bot" else "incoming webhook"
    where = f"posted to {sent.channel} (ts {sent.ts})" if target.mode == "bot" else f"Slack answered '{sent.detail}'"
    if not report(step, sent, where):
        raise typer.Exit(1)
