"""``shadow``: let market days land, score champion and challengers, run the schedule.

Exit codes: 0 done (including "another runner holds the lease"), 1 a version could not be
scored (e.g. its bundle failed verification; the others were still scored), 2 bad usage.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from registry.console import (
    ConfigOption,
    DebugOption,
    JsonOption,
    VersionOption,
    console,
    err_console,
    get_config,
    new_app,
    print_json,
    run,
    table,
)
from registry.db import make_engine
from shadow.runner import ShadowRun, run_shadow
from shadow.schedule import blocking_scheduler, trigger
from trainer.dataset import land_days, open_feed

app = new_app("Podium's shadow runner: score every challenger beside the champion on the same "
              "live days, net of cost.", completion=True)


@app.callback()
def main_options(version: VersionOption = False, debug: DebugOption = False) -> None:
    """Podium's shadow runner: score every challenger beside the champion on the same live
    days, net of cost."""


@app.command("run")
def run_command(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Score everything pending (predict, then settle what has an outcome), then exit.

    --json prints the run's summary as JSON on stdout."""
    settings = get_config(config)
    engine = make_engine(settings.database.url)
    try:
        with Progress(TextColumn("shadow"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=err_console if as_json else console, transient=True) as bar:
            task = bar.add_task("", total=None)

            def progress(version_id: str, done: int, total: int) -> None:
                bar.update(task, total=total, completed=done, description=version_id)

            result = run_shadow(settings, engine, progress=progress)
    finally:
        engine.dispose()
    if as_json:
        print_json(_summary(result))
    else:
        _report(result)
    if any(v.error for v in result.versions):
        raise typer.Exit(1)


@app.command()
def feed(
    config: ConfigOption = None,
    days: int = typer.Option(1, "--days", "-n", min=0, max=10_000, metavar="N",
                             help="How many more market days to land."),
) -> None:
    """Let N more days of the bundled synthetic market land as new date partitions."""
    settings = get_config(config)
    landed = land_days(settings.datasets_root, settings.market, days)
    available = open_feed(settings.datasets_root, settings.market).landed_days()
    if landed:
        console.print(f"landed {len(landed)} day(s): {landed[0]} … {landed[-1]} "
                      f"({len(available)} of {settings.market.n_days} days have landed)")
    else:
        console.print(f"no more days to land: all {len(available)} of "
                      f"{settings.market.n_days} days have landed")


@app.command()
def schedule(config: ConfigOption = None) -> None:
    """Run the scheduled shadow job in the foreground (Ctrl-C to stop)."""
    settings = get_config(config)
    trigger(settings)  # a bad cron is a configuration error before anything starts
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    engine = make_engine(settings.database.url)
    console.print(f"shadow schedule: {settings.shadow.schedule!r} (UTC); landing "
                  f"{settings.shadow.feed_days_per_tick} day(s) a tick; Ctrl-C to stop")
    try:
        blocking_scheduler(settings, engine).start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        engine.dispose()


def _report(result: ShadowRun) -> None:
    if not result.ran:
        console.print(result.detail)
        return
    console.print(table(
        f"shadow run through {result.last_landed}: {result.settled} day(s) settled",
        ["version", "predicted", "settled", "error"],
        ([v.version_id, v.predicted, v.settled, v.error or ""] for v in result.versions)))


def _summary(result: ShadowRun) -> dict:
    return {"ran": result.ran, "detail": result.detail,
            "last_landed": result.last_landed.isoformat() if result.last_landed else None,
            "settled": result.settled,
            "versions": [{"version_id": v.version_id, "predicted": v.predicted,
                          "settled": v.settled, "error": v.error} for v in result.versions]}


def main() -> None:
    sys.exit(run(app))
