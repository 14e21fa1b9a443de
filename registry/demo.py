"""``registry demo``: the whole champion/challenger flow on this machine, end to end.

The story: a team has a model in production (the first active spec, "the incumbent") and
retrains variants of it (the other active specs). Steps: 1. migrate the database; 2. generate
the synthetic market; 3. train the incumbent through the zoo's runner; 4. let shadow days land
and score them; 5. crown the incumbent the first champion through the gate, on its own shadow
evidence; 6. train the variants through the zoo; 7. let most of the market's remaining days land
and score everything, so that the variants have evidence against the champion (comparisons start
at its first day as champion); 8. show the leaderboard; 9. serve the real API in this process,
create a promote token and promote the best challenger over REST (or print the gate's refusal
and its reasons); print the curl lines to try next; then, unless ``--no-serve``, keep serving the
API and the page at ``/`` while the scheduled shadow job lets a new market day land every few
seconds (the days kept back for it), until Ctrl-C (exit 0).

Re-running reuses what is there: the database, the market and the days that have landed, the
trained versions (the training cutoff is pinned to the last day of the market's initial
landing, so the same specs give the same fingerprints and the zoo skips them), the champion.
Only the days still missing land, so a re-run is quick; once the market has run out of days the
demo scores what it has and says so. Start over by deleting the database and artefacts root.

The demo orchestrates every part (like the CLIs), so it imports zoo and shadow; ``registry.cli``
imports this module only when ``registry demo`` runs.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from registry import migrations, store
from registry.config import PodiumConfig
from registry.console import console, err_console, fail, get_config
from registry.db import make_engine, read_session, translate_db_errors, write_session
from registry.errors import GateRejected, NotFound
from registry.models import ModelVersion
from registry.promotion import promote

DEFAULT_TICK_SECONDS = 5
LOOPBACK = ("127.0.0.1", "localhost", "::1")
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
    listener = _listen(bind_host, settings.server.port if port is None else port)
    url = f"http://{_url_host(bind_host)}:{listener.getsockname()[1]}"
    console.print(f"Podium demo · config {settings.source} · track {settings.track} · database "
                  f"{_safe_url(settings)} · artefacts {settings.artefacts_root}",
                  markup=False, soft_wrap=True)
    started = time.monotonic()
    engine = make_engine(settings.database.url)
    try:
        steps = _Steps()
        with steps("migrate the database"):
            _migrate(engine, settings)
        with steps("generate the synthetic market"):
            _market(settings)
        with steps(f"train the incumbent, {incumbent.name}, through the zoo"):
            _train(settings, engine, [incumbent])
        evidence = settings.gate.min_days  # the anytime gate may be asked on any day after it
        with steps("let shadow days land and score them"):
            _land_and_score(settings, engine, after=settings.trainer.train_cutoff,
                            days=evidence, why="since the training cutoff")
        with steps("crown a first champion through the gate"):
            champion = _crown_when_evident(settings, engine, evidence=evidence)
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
            _land_and_score(settings, engine, after=first - dt.timedelta(days=1)
                            if first else None, days=_challenge_days(settings, first),
                            why="since the champion's first day" if champion else
                            "since the training cutoff")
        with steps("the leaderboard"):
            from registry.leaderboard_cli import leaderboard

            leaderboard(config=config_path, track=settings.track)
        with steps("serve the API and promote the best challenger over REST"):
            console.print(f"pre-serve steps took {time.monotonic() - started:.0f} s",
                          style="dim")
            _serve_and_promote(settings, engine, listener, url=url, keep_serving=serve,
                               tick_seconds=tick_seconds)
    finally:
        engine.dispose()
        listener.close()
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


class _Steps:
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


def _migrate(engine, settings: PodiumConfig) -> None:
    with translate_db_errors():
        before = migrations.current_revision(engine)
        migrations.upgrade(engine)
        after = migrations.current_revision(engine)
    if before == after:
        console.print(f"reusing the database {_safe_url(settings)} (schema {after}, head)")
    else:
        console.print(f"database {_safe_url(settings)}: schema {before or 'empty'} → {after}")
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


def _challenge_days(settings: PodiumConfig, first: dt.date | None) -> int:
    """Shadow days to land from ``first`` before the REST promotion: the rest of the market but
    the days kept back for the serving part to land live (a tenth of the shadow window, at
    least 30), never fewer than the gate's horizon."""
    from trainer.market import trading_days

    market = settings.market
    days = [d.date() for d in trading_days(market)]
    window = market.n_days - market.initial_days
    reserve = max(30, window // 10)
    available = sum(1 for day in days if first is None or day >= first) - reserve - 1
    return max(settings.gate.horizon_days, available)


def _train(settings: PodiumConfig, engine, specs: list) -> None:
    from zoo.runner import run_spec

    budget = settings.trainer.time_budget_seconds
    failed = []
    for spec in specs:
        if not console.is_terminal:  # a log gets a line; a terminal gets the live bar
            console.print(f"training {spec.name} …")
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      TextColumn("{task.fields[log]}", style="dim"), console=console,
                      transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task(f"training {spec.name}", total=budget, log="")

            def progress(_name: str, elapsed: float, line: str, task=task, bar=bar) -> None:
                bar.update(task, completed=min(elapsed, budget), log=line[-60:])

            record = run_spec(settings, spec, engine=engine, progress=progress)
        ok = record.status in OK_RUNS
        console.print(f"[{'green' if ok else 'red'}]{record.status}[/] {spec.name} → "
                      f"{record.version_id} ({record.duration_seconds:.1f} s) {record.message}")
        if not ok:
            failed.append(spec.name)
    if failed:
        raise fail(f"{len(failed)} spec(s) failed to train: {', '.join(failed)} (their "
                   f"trainer logs are under {settings.artefacts_root / 'runs'})")


def _land_and_score(settings: PodiumConfig, engine, *, after: dt.date | None, days: int,
                    why: str) -> bool:
    """Land days until ``days`` of them after ``after`` can be settled, then score them all.
    False when the market had no more days to land."""
    from trainer.dataset import land_days, open_feed

    market = settings.market
    landed = open_feed(settings.datasets_root, market).landed_days()
    have = sum(1 for day in landed if after is None or day > after)
    missing = days + 1 - have  # day t settles once day t+1 has landed
    if missing > 0:
        with console.status(f"landing {missing} market day(s) …"):
            new = land_days(settings.datasets_root, market, missing)
        if new:
            console.print(f"landed {len(new)} day(s): {new[0]} … {new[-1]}")
        if len(new) < missing:
            console.print(f"[yellow]the market has run out of days[/] ({market.n_days} have "
                          f"landed): {have + len(new)} day(s) {why}, not {days + 1}")
    else:
        new = []
        console.print(f"{have} day(s) have landed {why}: none missing")
    _score(settings, engine)
    return missing <= 0 or bool(new)


def _score(settings: PodiumConfig, engine) -> None:
    from shadow.runner import run_shadow

    with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("", total=None)

        def progress(version_id: str, done: int, total: int) -> None:
            bar.update(task, total=total, completed=done, description=version_id)

        result = run_shadow(settings, engine, progress=progress)
    if not result.ran:
        raise fail(f"{result.detail}: is a `registry serve` or `shadow schedule` running on "
                   "this database? Stop it (or wait for its lease to end) and run again")
    broken = [v for v in result.versions if v.error]
    if broken:
        raise fail("; ".join(f"{v.version_id}: {v.error}" for v in broken))
    console.print(f"scored {len(result.versions)} version(s) through {result.last_landed}: "
                  f"{result.settled} new (version, day) score(s), each net of "
                  f"{settings.shadow.portfolio.cost_bps:g} bps per unit of turnover")


def _crown_when_evident(settings: PodiumConfig, engine, *, evidence: int) -> ModelVersion | None:
    """Ask the gate; while no challenger passes on its own, wait ``min_days`` more shadow days
    and ask again, up to twice ``evidence`` days after the training cutoff."""
    days = evidence
    while True:
        champion, refused = _crown(settings, engine)
        if champion is not None or days >= 2 * evidence or not refused:
            return champion
        days = min(days + settings.gate.min_days, 2 * evidence)
        console.print(f"waiting for more evidence: up to {days} shadow days")
        if not _land_and_score(settings, engine, after=settings.trainer.train_cutoff,
                               days=days, why="since the training cutoff"):
            return None


def _crown(settings: PodiumConfig, engine) -> tuple[ModelVersion | None, bool]:
    """The best challenger on its own evidence becomes the first champion, if the gate agrees."""
    from registry.evidence import judge_track

    with read_session(engine) as session:
        try:
            champion = store.resolve_champion(session, settings.track)
        except NotFound:
            champion = None
        else:
            console.print(f"the track already has a champion, {champion.version_id} (since "
                          f"{store.as_utc(champion.champion_since):%Y-%m-%d %H:%M} UTC): "
                          "keeping it")
            return champion, False
        decision, _, _ = judge_track(session, track=settings.track, config=settings)
    if decision is None or decision.winner is None:
        console.print("[yellow]no first champion[/]: no challenger passes the gate on its own")
        for report in decision.reports if decision else ():
            console.print(f"  {report.version_id}: {report.verdict} after "
                          f"{report.shadow_days} day(s): "
                          f"{report.reasons[0] if report.reasons else ''}", markup=False)
        return None, decision is not None
    winner = decision.winner
    reason = "demo: the best challenger on its own shadow evidence becomes the first champion"
    try:
        crowned = promote(engine, version_id=winner, actor="demo", reason=reason,
                          config=settings)
    except GateRejected as refused:
        console.print(f"[yellow]no first champion[/]: {refused.detail}", soft_wrap=True)
        return None, True
    gate = crowned.gate
    console.print(f"[green]crowned[/] {winner} the first champion of {settings.track} "
                  f"(gate {gate.verdict if gate else '-'}; audit #{crowned.transition.audit.id})")
    console.print(f"  {decision.winner_reason}", style="dim", markup=False)
    return crowned.transition.version, False


def _serve_and_promote(settings: PodiumConfig, engine, listener: socket.socket, *, url: str,
                       keep_serving: bool, tick_seconds: int) -> None:
    from registry.api import create_app
    from registry.auth import create_token

    host = listener.getsockname()[0]
    public = _is_loopback(host)
    serving = _serving_settings(settings, public_reads=public, tick_seconds=tick_seconds)
    background = [_shadow_job(serving)] if keep_serving else []
    app = create_app(serving, background=background)
    server = _Server(app, listener)
    server.start()
    try:
        console.print(f"serving the real API at {url}/api/v1 (OpenAPI at {url}/docs)")
        if public:
            console.print("public reads are on for the demo (it listens on loopback only): the "
                          "page and the GET endpoints need no token")
        with write_session(engine) as session:
            row, token = create_token(
                session, name=f"demo-{dt.datetime.now(dt.UTC):%Y%m%dt%H%M%S%f}",
                scope="promote")
        console.print(f"created the promote-scope token {row.name!r} (shown once, below)")
        best = _promote_best(settings, engine, url=url, token=token)
        _print_next_steps(settings, url=url, token=token, best=best, serving=keep_serving)
        if keep_serving:
            _serve_until_interrupted(server, url=url, tick_seconds=tick_seconds,
                                     days=serving.shadow.feed_days_per_tick)
    finally:
        server.stop()


def _serving_settings(settings: PodiumConfig, *, public_reads: bool,
                      tick_seconds: int) -> PodiumConfig:
    """The demo's server: the scheduled job on a seconds-level interval, landing days."""
    shadow = settings.shadow.model_copy(update={
        "schedule": f"@every {tick_seconds}s", "in_serve": True,
        "feed_days_per_tick": settings.shadow.feed_days_per_tick or 1})
    server = settings.server.model_copy(update={
        "public_reads": settings.server.public_reads or public_reads})
    return settings.model_copy(update={"shadow": shadow, "server": server})


def _promote_best(settings: PodiumConfig, engine, *, url: str, token: str) -> str | None:
    """POST /promote for the leaderboard's best challenger; print the transition or refusal."""
    from registry.client import Client
    from registry.evidence import read_leaderboard

    with read_session(engine) as session:
        board = read_leaderboard(session, track=settings.track, config=settings)
    best = board["winner"] or next((row["version_id"] for row in board["rows"]
                                    if row["state"] == "challenger"), None)
    if best is None:
        console.print("no challenger to promote: every version is champion or retired")
        return None
    console.print(f"POST {url}/api/v1/versions/{best}/promote (the best challenger on the "
                  "leaderboard)", markup=False, soft_wrap=True)
    with Client(url, token) as client:
        try:
            answer = client.promote(best, "demo: the best challenger on the leaderboard")
        except GateRejected as refused:
            gate = refused.extra.get("gate") or {}
            console.print(f"[yellow]refused (409)[/]: the gate says {gate.get('verdict', '?')} "
                          f"for {best}; {settings.track} keeps its champion. Reasons:")
            for reason in gate.get("reasons") or [refused.detail]:
                console.print(f"  - {reason}", markup=False, soft_wrap=True)
            return best
    moved, gate = answer["transition"], answer.get("gate") or {}
    displaced = moved.get("displaced_version_id")
    console.print(f"[green]promoted (200)[/]: {moved['version_id']} is now the champion of "
                  f"{moved['track']}" + (f"; {displaced} retired" if displaced else "")
                  + f" (gate {gate.get('verdict', '-')}; audit #{moved['audit_id']}, by "
                  f"{moved['actor']})")
    for reason in gate.get("reasons") or []:
        console.print(f"  - {reason}", markup=False, soft_wrap=True)
    return best


def _print_next_steps(settings: PodiumConfig, *, url: str, token: str, best: str | None,
                      serving: bool) -> None:
    api, track, auth = f"{url}/api/v1", settings.track, '-H "Authorization: Bearer $PODIUM_TOKEN"'
    console.rule("next: try it yourself", align="left")
    lines = [
        f"export PODIUM_URL={url}",
        f"export PODIUM_TOKEN={token}",
        f"curl -s {api}/tracks/{track}/champion {auth}",
        f"curl -s '{api}/versions?track={track}&state=challenger' {auth}",
        f"curl -s {api}/tracks/{track}/leaderboard {auth}",
        f"curl -s {api}/tracks/{track}/audit {auth}",
    ]
    if best:
        lines.append(f"curl -s -X POST {api}/versions/{best}/promote {auth} "
                     "-H 'Content-Type: application/json' -d '{\"reason\": \"tried by hand\"}'")
    for line in lines:
        console.print(line, markup=False, soft_wrap=True, highlight=False)
    console.print(f"the leaderboard page: {url}/", markup=False)
    if not serving:
        console.print("not serving (--no-serve): `registry serve` serves the same database "
                      "(then use its URL)", style="dim")


def _serve_until_interrupted(server: _Server, *, url: str, tick_seconds: int,
                             days: int) -> None:
    console.rule("serving", align="left")
    console.print(f"serving {url}/ and the API until Ctrl-C; the scheduled shadow job lets "
                  f"{days} market day(s) land every {tick_seconds} s and scores them")
    # Ctrl-C and SIGTERM stop it cleanly (even where SIGINT was ignored, as under `cmd &`).
    previous = {sig: signal.signal(sig, signal.default_int_handler)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.wait()
    except KeyboardInterrupt:
        console.print("stopping: the running shadow tick finishes first …")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    server.stop()
    console.print("stopped cleanly")


def _shadow_job(settings: PodiumConfig) -> Callable:
    """The scheduled shadow job in the app's lifespan, announcing each tick; stops after the
    running tick finishes."""

    def start(app) -> Callable[[], None]:
        from shadow.schedule import background_scheduler

        # A tick longer than the interval skips the next one (coalesced): not worth a warning.
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        scheduler = background_scheduler(settings, app.state.engine)
        scheduler.add_listener(_TickAnnouncer(settings), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        scheduler.start()
        return lambda: scheduler.shutdown(wait=True)

    return start


class _TickAnnouncer:
    """Prints one line per scheduled tick (APScheduler listener); once the synthetic market has
    run out of days, says so once instead of printing empty ticks."""

    def __init__(self, settings: PodiumConfig) -> None:
        self.n_days = settings.market.n_days
        self.last_landed: dt.date | None = None
        self.ran_out = False

    def __call__(self, event: JobExecutionEvent) -> None:
        stamp = f"{dt.datetime.now():%H:%M:%S}"
        if event.exception is not None:
            err_console.print(f"{stamp} shadow tick failed: {type(event.exception).__name__}: "
                              f"{event.exception}", markup=False, soft_wrap=True)
            return
        result = event.retval
        if not result.ran:
            console.print(f"{stamp} shadow tick: {result.detail}", markup=False)
        elif result.last_landed != self.last_landed or result.settled:
            self.last_landed = result.last_landed
            console.print(f"{stamp} shadow tick: market through {result.last_landed}; "
                          f"{result.settled} new score(s) settled", markup=False)
        elif not self.ran_out:
            self.ran_out = True
            console.print(f"{stamp} all {self.n_days} days of the synthetic market have "
                          "landed: the leaderboard stays as it is; the API and the page go on",
                          markup=False)


class _Server:
    """uvicorn in a thread on an already-bound socket; the main thread keeps Ctrl-C.

    The main thread waits on an event, never in ``Thread.join``: a KeyboardInterrupt inside
    ``join`` can leave the thread looking finished while it still runs (CPython gh-90882).
    """

    def __init__(self, app, listener: socket.socket) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(
            app, log_level="warning", access_log=False, server_header=False, lifespan="on",
            timeout_graceful_shutdown=5))
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(listener,),
                                       name="podium-demo-server", daemon=True)

    def _run(self, listener: socket.socket) -> None:
        try:
            self.server.run(sockets=[listener])
        finally:
            self.done.set()

    def start(self, timeout: float = 60.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.done.is_set() or time.monotonic() > deadline:
                self.stop()
                raise fail("the API server did not start (see the messages above)")
            time.sleep(0.05)

    def wait(self) -> None:
        while not self.done.is_set():
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop serving; the app's shutdown stops the shadow job after its running tick."""
        self.server.should_exit = True
        if self.thread.is_alive() or not self.done.is_set():
            self.done.wait(60)


def _listen(host: str, port: int) -> socket.socket:
    """Bind now, so a busy port fails before minutes of work (uvicorn listens on it later)."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc}", exit_code=2) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
    except OSError as exc:
        sock.close()
        raise fail(f"cannot listen on {host}:{port} ({exc.strerror}): pass --port PORT "
                   "(0 picks a free one)") from None
    return sock


def _is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _safe_url(settings: PodiumConfig) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database.url).render_as_string(hide_password=True)
