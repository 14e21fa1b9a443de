"""``shadow``: let market days land, score champion and challengers, run the schedule.

Exit codes: 0 done; 1 a version could not be scored (e.g. its bundle failed verification; the
others were still scored) or the artefacts root cannot be written (``storage_error``); 2 bad
usage or configuration, or a track's data broke the panel contract or rewrote a day already used
(nothing scored on it); 3 (``LEASE_HELD``) nothing was done because other runners hold the
tracks' shadow leases (host, pid and start are printed): try again once they finish.
"""

from __future__ import annotations

import contextlib
import logging
import sys

import typer

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
from registry.db import opened_engine
from registry.errors import ConfigError, PodiumError
from registry.progress_bars import scoring_bar
from shadow.runner import ShadowRun, run_shadow
from shadow.schedule import blocking_scheduler, trigger
from trainer.dataset import land_days, open_feed

LEASE_HELD = 3  # exit code: other runners hold the leases, nothing was done

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
    with opened_engine(settings.database) as engine, scoring_bar("shadow") as report:
        result = run_shadow(settings, engine, progress=report)
    if as_json:
        print_json(_summary(result))
    else:
        _report(result)
    if result.errors:
        raise typer.Exit(max(error.exit_code for error in result.errors))
    if result.lease_busy:
        raise typer.Exit(LEASE_HELD)
    if any(v.error for v in result.versions):
        raise typer.Exit(1)


@app.command()
def feed(
    config: ConfigOption = None,
    days: int = typer.Option(1, "--days", "-n", min=0, max=10_000, metavar="N",
                             help="How many more market days to land."),
    track: str | None = typer.Option(None, "--track", metavar="TRACK",
                                     help="The synthetic track whose market "
                                     "lands (default: the top-level track)."),
) -> None:
    """Let N more days of the bundled synthetic market land as new date partitions."""
    settings = get_config(config)
    if track is not None:
        settings = settings.for_track(track)
    if settings.data.kind != "synthetic":
        raise ConfigError(f"track {settings.track!r} reads your own panel "
                          f"({settings.data.path}); its days land when your pipeline writes "
                          "them. `shadow feed` lands days of the bundled synthetic market only")
    try:
        landed = land_days(settings.datasets_root, settings.market, days)
        available = open_feed(settings.datasets_root, settings.market).landed_days()
    except OSError as exc:  # a read-only or full artefacts root: say so, as the zoo does
        raise PodiumError(f"cannot land market days under {settings.datasets_root}: "
                          f"{exc.strerror or exc}", code="storage_error") from None
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
    console.print(f"shadow schedule: {settings.shadow.schedule!r} (UTC); landing "
                  f"{settings.shadow.feed_days_per_tick} day(s) a tick; Ctrl-C to stop")
    with opened_engine(settings.database) as engine, \
            contextlib.suppress(KeyboardInterrupt, SystemExit):
        blocking_scheduler(settings, engine).start()


def _report(result: ShadowRun) -> None:
    for track in result.tracks:
        if track.error is not None:
            err_console.print(f"{track.track}: {track.detail}", markup=False)
            continue
        if not track.ran:
            console.print(f"{track.track}: {track.detail}" if len(result.tracks) > 1
                          else track.detail, markup=False)
            continue
        moved = track.universe
        console.print(table(
            f"shadow run on {track.track} through {track.last_landed}: {track.settled} day(s) "
            f"settled; assets entered {moved.entered}, left {moved.left}; positions closed on "
            f"exit {moved.closed_positions}",
            ["version", "predicted", "settled", "error"],
            ([v.version_id, v.predicted, v.settled, v.error or ""] for v in track.versions)))
        for day, why in sorted(moved.skipped_days.items()):
            console.print(f"{track.track}: skipped {day}: {why}")
    for track, versions in sorted(result.unconfigured.items()):
        console.print(f"not scored: {len(versions)} version(s) on track {track!r}, which this "
                      "configuration does not name (its data is unknown here)")


def _summary(result: ShadowRun) -> dict:
    """The run as JSON: per track, what landed, what was scored and what went wrong."""
    return {"ran": result.ran, "detail": result.detail, "settled": result.settled,
            "tracks": [{"track": t.track, "ran": t.ran, "detail": t.detail,
                        "last_landed": t.last_landed.isoformat() if t.last_landed else None,
                        "settled": t.settled, "lease_busy": t.lease_busy,
                        "error": t.error.detail if t.error is not None else None,
                        "versions": [{"version_id": v.version_id, "predicted": v.predicted,
                                      "settled": v.settled, "error": v.error}
                                     for v in t.versions]} for t in result.tracks],
            "unconfigured": result.unconfigured}


def main() -> None:
    sys.exit(run(app))
