"""16 workers promote 16 different challengers of one track at the same moment.

Each asserts the same champion (compare-and-set), so exactly one may win; every other must get a
clear conflict, never a deadlock or a "database is locked" from the driver.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path

import pytest

from registry import store
from registry.db import make_engine, read_session, write_session
from registry.errors import PodiumError
from registry.promotion import GateOutcome, promote_version

WORKERS = 16
PASS = GateOutcome(passed=True, verdict="PASS")


def _promote(url: str, root: str, version_id: str, expected: str, barrier) -> str:
    engine = make_engine(url)
    try:
        barrier.wait(timeout=60)
        with write_session(engine) as session:
            promote_version(session, version_id=version_id, actor="race", reason="race",
                            gate=PASS, artefacts_root=Path(root), expected_champion=expected)
        return "ok"
    except PodiumError as exc:
        return exc.code
    except Exception as exc:  # anything else is a failure of the guarantee
        return f"unexpected {type(exc).__name__}: {exc}"
    finally:
        engine.dispose()


def _process_worker(url, root, version_id, expected, barrier, results) -> None:
    results.put((version_id, _promote(url, root, version_id, expected, barrier)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_sixteen_concurrent_promotions(kind, db_url, engine, artefacts_root, register):
    incumbent = register("v0-incumbent")
    with write_session(engine) as session:
        promote_version(session, version_id=incumbent, actor="setup", reason="first",
                        gate=PASS, artefacts_root=artefacts_root)
    challengers = [register(f"v{i + 1}-race") for i in range(WORKERS)]
    outcomes: dict[str, str] = {}
    if kind == "threads":
        barrier = threading.Barrier(WORKERS)

        def run(version_id: str) -> None:
            outcomes[version_id] = _promote(db_url, str(artefacts_root), version_id, incumbent,
                                            barrier)

        threads = [threading.Thread(target=run, args=(v,)) for v in challengers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    else:
        # Not forked from pytest (its threads): from a fork server that imported this module
        # once, instead of 16 interpreters each importing it (about 2 s of CPU apiece).
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
        procs = [ctx.Process(target=_process_worker, args=(db_url, str(artefacts_root), v,
                                                           incumbent, barrier, results))
                 for v in challengers]
        for p in procs:
            p.start()
        for _ in procs:
            version_id, outcome = results.get(timeout=180)
            outcomes[version_id] = outcome
        for p in procs:
            p.join(timeout=30)
    assert len(outcomes) == WORKERS
    winners = [v for v, outcome in outcomes.items() if outcome == "ok"]
    losers = {outcome for v, outcome in outcomes.items() if outcome != "ok"}
    assert len(winners) == 1, outcomes
    assert losers == {"champion_changed"}, outcomes
    with read_session(engine) as session:
        champions = store.list_versions(session, state="champion")
        assert [v.version_id for v in champions] == winners
        assert store.get_version(session, incumbent).state == "retired"
        promotions = [e for e in store.list_audit(session) if e.action == "promote"]
    assert len(promotions) == 2  # the incumbent's, and the one winner's
    assert promotions[0].version_id == winners[0]
    assert promotions[0].displaced_version_id == incumbent
