"""``zoo``: list the model specs, train one, or train every active one.

Exit codes: 0 when every spec it ran succeeded (or was already registered), 1 when any failed
or timed out, or when no Ray cluster answers at the address given, 2 on bad usage or
configuration (unknown spec, retired spec, disallowed key, a malformed cluster address, a spec
asking for resources no node of the cluster has, Ray not installed), 130 when interrupted.
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import typer
from rich.console import Console

from registry import store
from registry.config import ModelSpec, PodiumConfig
from registry.console import (
    ConfigOption,
    DebugOption,
    JsonOption,
    VersionOption,
    console,
    err_console,
    fail,
    get_config,
    new_app,
    print_json,
    run,
    table,
)
from registry.db import opened_engine, read_session
from registry.errors import ConfigError
from registry.progress_bars import cluster_board, training_bar
from zoo.runner import run_spec
from zoo.runs import RunRecord, last_runs_by_spec
from zoo.specs import ALLOWED, active_specs, check_all_specs, find_spec

app = new_app("Podium's model zoo: train declarative variants through the unchanged trainer "
              "and register each as a challenger (never touching the champion).", completion=True)

Executor = Literal["local", "ray"]
OK_STATUSES = {"registered", "skipped", "retrained"}


@app.command()
def main(
    config: ConfigOption = None,
    list_specs: bool = typer.Option(False, "--list", help="Show the specs and their versions."),
    spec: str | None = typer.Option(None, "--spec", metavar="NAME", help="Train this spec.",
                                    show_default=False),
    all_active: bool = typer.Option(False, "--all-active", help="Train every active spec, "
                                    "one after another (or side by side with --executor ray)."),
    executor: Annotated[Executor | None, typer.Option(
        "--executor", help="Where to train: here, one spec after another (local), or one Ray "
        "task per spec (ray). Default: the config's zoo.executor.", show_default=False)] = None,
    address: str | None = typer.Option(None, "--address", metavar="HOST:PORT",
                                       help="The Ray cluster to train on (with --executor ray). "
                                       "Default: the config's zoo.address, else $RAY_ADDRESS, "
                                       "the cluster started on this machine, or a new local "
                                       "one.", show_default=False),
    force: bool = typer.Option(False, "--force", help="Train even if this exact fingerprint "
                               "is already registered."),
    track: str | None = typer.Option(None, "--track", metavar="TRACK",
                                     help="The track to train for (default: "
                                     "the top-level track); its data and specs are used."),
    as_json: JsonOption = False,
    version: VersionOption = False,
    debug: DebugOption = False,
) -> None:
    """List specs (--list), train one (--spec NAME) or all active ones (--all-active).

    With --json, the list or the run's summary is printed as JSON on stdout (progress and
    per-spec lines go to stderr)."""
    if sum([list_specs, spec is not None, all_active]) != 1:
        raise fail("choose exactly one of --list, --spec NAME, --all-active", exit_code=2)
    settings = get_config(config)
    if track is not None:
        settings = settings.for_track(track)
    check_all_specs(settings)
    executor = executor or settings.zoo.executor
    if address is not None and executor != "ray":
        raise fail("--address names a Ray cluster: use it with --executor ray", exit_code=2)
    with opened_engine(settings.database) as engine:
        if list_specs:
            _list(settings, engine, as_json=as_json)
            return
        if spec is not None:
            chosen = find_spec(settings, spec)
            if chosen.status != "active":
                raise ConfigError(f"spec {spec!r} is retired; retired specs are never trained "
                                  "(set its status to active to train it again)",
                                  code="spec_retired")
            specs = [chosen]
        else:
            specs = active_specs(settings)
        out = err_console if as_json else console
        if executor == "ray":
            records = _run_on_ray(settings, specs, engine=engine, force=force, out=out,
                                  address=address or settings.zoo.address)
        else:
            records = [_run_one(settings, s, engine=engine, force=force, out=out)
                       for s in specs]
    if as_json:
        print_json([{"spec": r.spec, "status": r.status, "version_id": r.version_id,
                     "duration_seconds": r.duration_seconds, "message": r.message,
                     "ok": r.status in OK_STATUSES} for r in records])
    else:
        console.print(table("zoo run summary", ["spec", "result", "version", "time", "detail"],
                            ([r.spec, r.status, r.version_id, f"{r.duration_seconds:.1f} s",
                              r.message] for r in records)))
    if any(r.status not in OK_STATUSES for r in records):
        raise typer.Exit(1)


def _run_one(settings: PodiumConfig, spec: ModelSpec, *, engine, force: bool,
             out: Console) -> RunRecord:
    with training_bar(spec.name, budget_seconds=settings.trainer.time_budget_seconds) as report:
        record = run_spec(settings, spec, engine=engine, force=force, progress=report)
    _print_record(record, out)
    return record


def _run_on_ray(settings: PodiumConfig, specs: list[ModelSpec], *, engine, force: bool,
                out: Console, address: str | None) -> list[RunRecord]:
    from zoo.ray_executor import run_specs_on_ray  # Ray is imported only when asked for

    with cluster_board([s.name for s in specs],
                       budget_seconds=settings.trainer.time_budget_seconds) as report:
        return run_specs_on_ray(settings, specs, engine=engine, address=address, force=force,
                                on_record=lambda record: _print_record(record, out),
                                progress=report)


def _print_record(record: RunRecord, out: Console) -> None:
    style = "green" if record.status in OK_STATUSES else "red"
    out.print(f"[{style}]{record.status}[/] {record.spec} → {record.version_id} "
              f"({record.duration_seconds:.1f} s) {record.message}")


def _list(settings: PodiumConfig, engine, *, as_json: bool) -> None:
    latest: dict[str, tuple[str, str]] = {}
    with read_session(engine) as session:
        for version in reversed(store.list_versions(session, track=settings.track,
                                                    limit=store.MAX_PAGE)):
            if version.spec_name:
                latest[version.spec_name] = (version.version_id, version.state)
    last_runs = last_runs_by_spec(settings.artefacts_root)
    rows, listed = [], []
    for s in settings.model_specs:
        version_id, state = latest.get(s.name, ("-", "-"))
        run_info = last_runs.get(s.name)
        last = f"{run_info['status']} {run_info['started_at']:%Y-%m-%d %H:%M}" if run_info \
            else "-"
        overrides = ", ".join(f"{k}={v}" for k, v in s.overrides.items()) or "-"
        rows.append([s.name, s.status, overrides, version_id, state, last])
        listed.append({"spec": s.name, "status": s.status, "overrides": dict(s.overrides),
                       "latest_version": latest.get(s.name, (None, None))[0],
                       "state": latest.get(s.name, (None, None))[1],
                       "last_run": {"status": run_info["status"],
                                    "started_at": run_info["started_at"].isoformat()}
                       if run_info else None})
    if as_json:
        print_json({"track": settings.track, "specs": listed, "allowed_overrides": list(ALLOWED)})
        return
    console.print(table(f"{len(rows)} spec(s) on track {settings.track}",
                        ["spec", "status", "overrides", "latest version", "state", "last run"],
                        rows))
    console.print(f"allowed override keys: {', '.join(ALLOWED)}", style="dim")


def entry() -> None:
    sys.exit(run(app))
