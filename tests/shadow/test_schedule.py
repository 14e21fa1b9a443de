import pytest

from registry.errors import ConfigError
from shadow.schedule import JOB_ID, background_scheduler, shadow_tick, trigger
from trainer.dataset import open_feed

pytestmark = pytest.mark.slow


def test_the_job_coalesces_and_runs_one_at_a_time(shadow_env) -> None:
    config, engine, _ = shadow_env
    scheduler = background_scheduler(config, engine)
    job = scheduler.get_job(JOB_ID)
    assert job.coalesce is True and job.max_instances == 1
    assert str(job.trigger) == str(trigger(config))


def test_a_tick_lands_the_configured_days_then_scores_them(shadow_env) -> None:
    config, engine, versions = shadow_env
    before = len(open_feed(config.datasets_root, config.market).landed_days())
    config = config.model_copy(update={"shadow": config.shadow.model_copy(
        update={"feed_days_per_tick": 3})})
    first = shadow_tick(config, engine)
    assert len(open_feed(config.datasets_root, config.market).landed_days()) == before + 3
    assert first.settled == 2 * len(versions)
    second = shadow_tick(config, engine)
    assert second.settled == 3 * len(versions)


def test_a_bad_cron_is_a_configuration_error(shadow_env) -> None:
    config, _, _ = shadow_env
    config = config.model_copy(update={"shadow": config.shadow.model_copy(
        update={"schedule": "every five minutes"})})
    with pytest.raises(ConfigError, match="shadow.schedule 'every five minutes' is not a cron"):
        trigger(config)


def test_an_every_schedule_is_a_seconds_interval(shadow_env) -> None:
    import datetime as dt

    config, _, _ = shadow_env
    config = config.model_copy(update={"shadow": config.shadow.model_copy(
        update={"schedule": "@every 5s"})})
    assert trigger(config).interval == dt.timedelta(seconds=5)
