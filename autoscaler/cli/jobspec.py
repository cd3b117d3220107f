"""`forescale render` and `forescale deploy`: the pools' Nomad jobs from forescale.yaml (and forescale's own)."""

from __future__ import annotations

from pathlib import Path

import typer

from autoscaler import __version__
from autoscaler.cli.common import ConfigOpt, console, err_console
from autoscaler.core.text import markup_safe

SELF_IMAGE_DEFAULT = f"forescale:{__version__}"  # what `make image` tags (selfjob.SELF_IMAGE; not imported: start-up)
PoolOpt = typer.Option(None, "--pool", "-p", help="Only the job of this pool (repeatable); all its groups.")


def render(
    config: Path = ConfigOpt,
    pool: list[str] | None = PoolOpt,
    out: Path = typer.Option(Path("out/jobs"), "--out", "-o", help="Directory for the rendered files."),
    self_job: bool = typer.Option(False, "--self", help="Also render forescale's own job (forescale.nomad.hcl)."),
    self_mode: str = typer.Option("service", "--self-mode", help="service (daemon) or periodic (forescale tick)."),
    self_image: str = typer.Option(
        SELF_IMAGE_DEFAULT, "--self-image", help="Docker image with forescale, as the Nomad clients pull it."
    ),
    self_node_pool: str = typer.Option("default", "--self-node-pool", help="Node pool for forescale's own job."),
    self_count: int | None = typer.Option(
        None,
        "--self-count",
        help="Daemons to run [default: 2 for a service with leader election (one scales, one stands by), else 1].",
    ),
    self_store: str = typer.Option(
        "nomad", "--self-override-store", help="Where the job keeps manual overrides: nomad (Variables) or file."
    ),
    self_prometheus: str | None = typer.Option(
        None, "--self-prometheus-url", help="Prometheus as the allocation reaches it (default: prometheus.url)."
    ),
    self_nomad: str | None = typer.Option(
        None, "--self-nomad-addr", help="Nomad as the allocation reaches it (default: nomad.address / $NOMAD_ADDR)."
    ),
    cron: str = typer.Option("*/20 * * * *", "--cron", help="Schedule of the periodic job (UTC)."),
) -> None:
    """Validate and write each pool's Nomad job (HCL) and its compose file (for inspection).

    With --self, also forescale's own job, ready to deploy: the config and schedule file embedded,
    secrets from the Nomad Variable nomad/jobs/forescale, overrides in Nomad Variables.
    """
    from autoscaler.config import load_config
    from autoscaler.jobspec.selfjob import SelfJob, render_self, secret_env_names, self_job_warnings
    from autoscaler.jobspec.workers import check_config, has_jobspecs, render_jobs, write_rendered

    cfg = load_config(config)
    for warning in check_config(cfg).warnings:
        err_console.print(f"[yellow]warning[/]: {markup_safe(warning)}", highlight=False)
    self_text = None
    self_keys: list[str] = []
    if self_job:  # validated first: an error writes nothing
        if self_mode not in ("service", "periodic"):
            raise typer.BadParameter("use service or periodic", param_hint="--self-mode")
        from autoscaler.core.settings.adapters import OVERRIDE_STORES

        if self_store not in OVERRIDE_STORES:
            raise typer.BadParameter(f"use {' or '.join(OVERRIDE_STORES)}", param_hint="--self-override-store")
        spec = SelfJob(
            mode=self_mode,  # type: ignore[arg-type]
            image=self_image,
            node_pool=self_node_pool,
            cron=cron,
            count=self_count,
            override_store=self_store,  # type: ignore[arg-type]
            prometheus_url=self_prometheus,
            nomad_address=self_nomad,
        )
        self_text = render_self(cfg, spec)
        self_keys = spec.secret_keys or secret_env_names(cfg)
        for warning in self_job_warnings(cfg, spec):
            err_console.print(f"[yellow]warning[/]: {markup_safe(warning)}", highlight=False)
    paths: list[Path] = []
    if pool or self_text is None or has_jobspecs(cfg):
        paths = write_rendered(render_jobs(cfg, pool), out)
    if self_text is not None:
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{spec.job_id}.nomad.hcl"
        path.write_text(self_text, encoding="utf-8")
        paths.append(path)
    for path in paths:
        console.print(f"wrote {markup_safe(path)}", highlight=False)
    for p in cfg.pools:  # never silent: say which pools have no job to render, and why
        if p.jobspec is None and (not pool or p.name in pool):
            console.print(
                f"skipped pool {markup_safe(p.name)}: no jobspec: section, so forescale renders no job for it "
                f"(its job {markup_safe(p.nomad.job)} is managed elsewhere); add jobspec: to render one",
                highlight=False,
            )
    if self_text is not None:
        keys = " ".join(f"{key}=…" for key in self_keys)
        job_file = out / f"{spec.job_id}.nomad.hcl"
        console.print(f"next: nomad var put nomad/jobs/{spec.job_id} {keys}", highlight=False)
        console.print(f"      nomad job run {markup_safe(job_file)}", highlight=False)


def deploy(
    config: Path = ConfigOpt,
    pool: list[str] | None = PoolOpt,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan diff against Nomad; change nothing."),
) -> None:
    """Register the pools' jobs with Nomad (PreserveCounts: the autoscaled counts are kept)."""
    from autoscaler.config import load_config
    from autoscaler.jobspec.deploy import deploy_jobs
    from autoscaler.jobspec.workers import check_config, render_jobs

    cfg = load_config(config)
    for warning in check_config(cfg).warnings:
        err_console.print(f"[yellow]warning[/]: {markup_safe(warning)}", highlight=False)
    jobs = render_jobs(cfg, pool)
    deploy_jobs(cfg, jobs, dry_run=dry_run, console=console)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(render)
    app.command()(deploy)
