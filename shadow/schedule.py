"""The scheduled shadow job: APScheduler on ``shadow.schedule``, a cron or ``@every <N>s|m|h``.

The same job runs in ``shadow schedule`` (foreground) and inside ``registry serve``: let
``feed_days_per_tick`` synthetic days land on each synthetic track (a panel lands by itself),
then ``run_shadow``. Missed runs
coalesce into one, one instance at a time per process, and the database lease keeps replicas from
scoring the same day.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from registry.config import PodiumConfig
from registry.errors import ConfigError

if TYPE_CHECKING:  # the job's code (pandas, pyarrow, the scorer) is loaded by its first tick
    from shadow.runner import ShadowRun

log = logging.getLogger("podium.shadow")
JOB_ID = "podium-shadow"
EVERY = re.compile(r"^@every\s+([1-9][0-9]{0,5})\s*([smh])$")  # e.g. "@every 5s" (demos)


def shadow_tick(config: PodiumConfig, engine: Engine) -> ShadowRun:
    """One scheduled tick: land the configured days, then score everything pending."""
    from shadow.runner import run_shadow
    from trainer.dataset import land_days

    if config.shadow.feed_days_per_tick:
        for name in config.track_names:  # synthetic tracks only: a panel lands by itself
            scoped = config.for_track(name)
            if scoped.data.kind == "synthetic":
                landed = land_days(scoped.datasets_root, scoped.market,
                                   config.shadow.feed_days_per_tick)
                log.info("%s: landed %d market day(s)", name, len(landed))
    result = run_shadow(config, engine)
    log.info("shadow run: %s, %d day(s) settled", result.detail, result.settled)
    return result


def trigger(config: PodiumConfig) -> BaseTrigger:
    schedule = config.shadow.schedule.strip()
    if every := EVERY.match(schedule):
        unit = {"s": "seconds", "m": "minutes", "h": "hours"}[every.group(2)]
        return IntervalTrigger(**{unit: int(every.group(1))}, timezone="UTC")
    try:
        return CronTrigger.from_crontab(schedule, timezone="UTC")
    except ValueError as exc:
        raise ConfigError(f"shadow.schedule {config.shadow.schedule!r} is not a cron "
                          f"expression (minute hour day month weekday) nor '@every <N>s|m|h': "
                          f"{exc}") from None


def add_shadow_job(scheduler: BaseScheduler, config: PodiumConfig, engine: Engine) -> None:
    scheduler.add_job(shadow_tick, trigger(config), args=(config, engine), id=JOB_ID,
                      coalesce=True, max_instances=1, misfire_grace_time=None,
                      replace_existing=True)


def background_scheduler(config: PodiumConfig, engine: Engine) -> BackgroundScheduler:
    """For ``registry serve``: start() it in the app's lifespan, shutdown() on the way out."""
    scheduler = BackgroundScheduler(timezone="UTC")
    add_shadow_job(scheduler, config, engine)
    return scheduler


def blocking_scheduler(config: PodiumConfig, engine: Engine) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone="UTC")
    add_shadow_job(scheduler, config, engine)
    return scheduler
