"""The demo's story, step by step (see ``registry.demo``): migrate, generate the market, train
the incumbent, score it, crown it, train the variants, score them against it, show the
leaderboard, then serve and promote."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from sqlalchemy import Engine

from registry import migrations, store
from registry.config import ModelSpec, PodiumConfig
from registry.console import console, fail, get_config
from registry.db import opened_engine, read_session, safe_url
from registry.demo.first_champion import crown_when_evident
from registry.demo.server import bind_listener, url_host
from registry.demo.serving import serve_and_promote
from registry.demo.shadow_days import challenge_days, land_and_score
from registry.progress_bars import training_bar

DEFAULT_TICK_SECONDS = 5
STEPS = 9
OK_RUNS = ("registered", "skipped", "retrained")


def run_demo(config_path: Path | None, *, serve: bool, host: str | None, port: int | None,
             tick_seconds: int = DEFAULT_TICK_SECONDS) -> int:
    """The whole flow; returns the exit code (errors raise, as in every command)."""
    from zoo.specs import active_specs, check_all_specs

    settings = pin_training_cutoff(get_config(config_path))
    check_all_specs(settings)
    specs = active_specs(settings)
    if not specs:
        raise fail(f"{settings.source}: no active model spec to train", exit_code=2)
    incumbent, variants = specs[0], specs[1:]
    bind_host = host or settings.server.host
    listener = bind_listener(bind_host, settings.server.port if port is None else port)
    url = f"http://{url_host(bind_host)}:{listener.getsockname()[1]}"
    console.print(f"Podium demo · config {settings.source} · track {settings.track} · database "
                  f"{safe_url(settings.database.url)} · artefacts {settings.artefacts_root}",
                  markup=False, soft_wrap=True)
    started = time.monotonic()
    with closing(listener), opened_engine(settings.database) as engine:
        steps = StepHeadings()
        with steps("migrate the database"):
            _migrate(engine, settings)
        with steps("generate the synthetic market"):
            _market(settings)
        with steps(f"train the incumbent, {incumbent.name}, through the zoo"):
            _train(settings, engine, [incumbent])
        evidence = settings.gate.min_days  # the anytime gate may be asked on any day after it
        with steps("let shadow days land and score them"):
            land_and_score(settings, engine, after=settings.trainer.train_cutoff,
                           days=evidence, why="since the training cutoff")
        with steps("crown a first champion through the gate"):
            champion = crown_when_evident(settings, engine, evidence=evidence)
        with steps(f"train the variants through the zoo ({len(variants)} challengers)"):
            if variants:
                _train(settings, engine, variants)
            else:
                console.print("no other active spec: nothing challenges the champion")
        with steps("let more days land, so the variants have evidence against the champion"):
            if champion is None:
                console.print("no champion: the variants are scored on their own")
                first = settings.trainer.train_cutoff
            else:
                with read_session(engine) as session:
                    from registry.evidence import champion_first_day

                    first = champion_first_day(session, champion)
                console.print(f"comparisons start at {champion.version_id}'s first day as "
                              f"champion, {first}")
            land_and_score(settings, engine, after=first - dt.timedelta(days=1)
                           if first else None, days=challenge_days(settings, first),
                           why="since the champion's first day" if champion else
                           "since the training cutoff")
        with steps("the leaderboard"):
            from registry.leaderboard_cli import leaderboard

            leaderboard(config=config_path, track=settings.track)
        with steps("serve the API and promote the best challenger over REST"):
            console.print(f"pre-serve steps took {time.monotonic() - started:.0f} s",
                          style="dim")
            serve_and_promote(settings, engine, listener, url=url, keep_serving=serve,
                              tick_seconds=tick_seconds)
    return 0


def pin_training_cutoff(settings: PodiumConfig) -> PodiumConfig:
    """Train on the market as first landed (unless the file pins a cutoff), so a re-run finds
    the same fingerprints registered instead of training new versions on the days since."""
    if settings.trainer.train_cutoff is not None:
        return settings
    from trainer.market import trading_days

    cutoff = trading_days(settings.market)[settings.market.initial_days - 1].date()
    return settings.model_copy(update={"trainer": settings.trainer.model_copy(
        update={"train_cutoff": cutoff})})


class StepHeadings:
    """Numbered step headings, each followed by how long it took."""

    def __init__(self) -> None:
        self.number = 0

    @contextmanager
    def __call__(self, title: str) -> Iterator[None]:
        self.number += 1
        console.rule(f"[bold][{self.number}/{STEPS}] {title}", align="left")
        started = time.monotonic()
        yield
        console.print(f"({time.monotonic() - started:.1f} s)", style="dim")


def _migrate(engine: Engine, settings: PodiumConfig) -> None:
    before, after = migrations.upgrade_to_head(engine)
    where = safe_url(settings.database.url)
    if before == after:
        console.print(f"reusing the database {where} (schema {after}, head)")
    else:
        console.print(f"database {where}: schema {before or 'empty'} → {after}")
    with read_session(engine) as session:
        versions = store.list_versions(session, track=settings.track, limit=store.MAX_PAGE)
    if versions:
        champion = next((v.version_id for v in versions if v.state == "champion"), "none")
        console.print(f"track {settings.track} already has {len(versions)} version(s), "
                      f"champion {champion}: the demo goes on from there (delete the database "
                      "and the artefacts root to start over)")


def _market(settings: PodiumConfig) -> None:
    from trainer.dataset import dataset_dir, ensure_dataset, open_feed

    market = settings.market
    existed = (dataset_dir(settings.datasets_root, market) / "metadata.json").is_file()
    with console.status(f"generating {market.n_assets} assets × {market.n_days} days …"):
        directory = ensure_dataset(settings.datasets_root, market)
    landed = open_feed(settings.datasets_root, market).landed_days()
    console.print(f"{'reusing' if existed else 'generated'} market {market.name!r}: "
                  f"{market.n_assets} assets, {len(landed)} of {market.n_days} days landed "
                  f"({landed[0]} … {landed[-1]}) in {directory}", markup=False, soft_wrap=True)
    console.print(f"the specs train on data up to {settings.trainer.train_cutoff}; every later "
                  "day is a live shadow day")


def _train(settings: PodiumConfig, engine: Engine, specs: list[ModelSpec]) -> None:
    from zoo.runner import run_spec

    failed = []
    for spec in specs:
        if not console.is_terminal:  # a log gets a line; a terminal gets the live bar
            console.print(f"training {spec.name} …")
        with training_bar(spec.name,
                          budget_seconds=settings.trainer.time_budget_seconds) as report:
            record = run_spec(settings, spec, engine=engine, progress=report)
        ok = record.status in OK_RUNS
        console.print(f"[{'green' if ok else 'red'}]{record.status}[/] {spec.name} → "
                      f"{record.version_id} ({record.duration_seconds:.1f} s) {record.message}")
        if not ok:
            failed.append(spec.name)
    if failed:
        raise fail(f"{len(failed)} spec(s) failed to train: {', '.join(failed)} (their "
                   f"trainer logs are under {settings.artefacts_root / 'runs'})")


