"""The demo's scheduled shadow job, started with the API, and the line it prints each tick."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent

from registry.config import PodiumConfig
from registry.console import console, err_console


def scheduled_shadow_job(settings: PodiumConfig) -> Callable[[Any], Callable[[], None]]:
    """A starter for ``create_app(background=…)``: the scheduled shadow job in the app's
    lifespan, announcing each tick; it stops after the running tick finishes."""

    def start(app: Any) -> Callable[[], None]:
        from shadow.schedule import background_scheduler

        # A tick longer than the interval skips the next one (coalesced): not worth a warning.
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
        scheduler = background_scheduler(settings, app.state.engine)
        scheduler.add_listener(ShadowTickAnnouncer(settings),
                               EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        scheduler.start()
        return lambda: scheduler.shutdown(wait=True)

    return start


class ShadowTickAnnouncer:
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
