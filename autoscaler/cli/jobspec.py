"""`forescale render` and `forescale deploy`: the pools' Nomad jobs from forescale.yaml (and forescale's own)."""

from __future__ import annotations

from pathlib import Path

import typer

from autoscaler.cli.common import ConfigOpt, console, err_console

PoolOpt = typer.Option(None, "--pool", "-p", help="Only the job of this pool (repeatable); all its groups.")


def render(
    config: Path = ConfigOpt,
    pool: list[str] | None = PoolOpt,
    out: Path = typer.Option(Path("out/jobs"), "--out", "-o", help="Directory for the rendered files."),
    self_job: bool = typer.Option(False, "--self", help="Also render forescale's own job (forescale.nomad.hcl)."),
    self_mode: str = typer.Option("service", "--self-mode", help="service (daemon) or periodic (forescale tick)."),
    self_image: str = typer.Option("forescale:latest", "--self-image", help="Docker image with forescale."),
    self_node_pool: str = typer.Option("default", "--self-node-pool", help="Node pool for forescale's own job."),
    cron: str = typer.Option("*/20 * * * *", "--cron", help="Schedule of the periodic job (UTC)."),
) -> None:
    """Validate and write each pool's Nomad job (HCL) and its compose file (for inspection)."""
    from autoscaler.config import load_config
    from autoscaler.jobspec.render import SelfJob, check_config, render_jobs, render_self, write_rendered

    cfg = load_config(config)
    for warning in check_config(cfg).warnings:
        err_console.print(f"[yellow]warning[/]: {warning}", highlight=False)
    jobs = render_jobs(cfg, pool)
    paths = write_rendered(jobs, out)
    if self_job:
        if self_mode not in ("service", "periodic"):
            raise typer.BadParameter("use service or periodic", param_hint="--self-mode")
        spec = SelfJob(mode=self_mode, image=self_image, node_pool=self_node_pool, cron=cron)  # type: ignore[arg-type]
        path = out / f"{spec.job_id}.nomad.hcl"
        path.write_text(render_self(cfg, spec), encoding="utf-8")
        paths.append(path)
    for path in paths:
        console.print(f"wrote {path}", highlight=False)


def deploy(
    config: Path = ConfigOpt,
    pool: list[str] | None = PoolOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan diff against Nomad; change nothing."),
) -> None:
    """Register the pools' jobs with Nomad (PreserveCounts: the autoscaled counts are kept)."""
    from autoscaler.config import load_config
    from autoscaler.jobspec.deploy import deploy_jobs
    from autoscaler.jobspec.render import check_config, render_jobs

    cfg = load_config(config)
    for warning in check_config(cfg).warnings:
        err_console.print(f"[yellow]warning[/]: {warning}", highlight=False)
    jobs = render_jobs(cfg, pool)
    deploy_jobs(cfg, jobs, dry_run=dry_run, console=console)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(render)
    app.command()(deploy)
