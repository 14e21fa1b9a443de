"""The promotion service: evidence, the gate's verdict, the swap, the audit (refusals too)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import col, select

from registry import store
from registry.config import PodiumConfig
from registry.db import read_session, write_session
from registry.errors import ChampionChanged, GateRejected, InvalidInput, InvalidTransition
from registry.models import AuditEntry, Event, ShadowScore
from registry.promotion import GateOutcome, gate_outcome, promote, promote_version

TRACK = "equities-daily"
FAIL = GateOutcome(passed=False, verdict="FAIL", reasons=("net Sharpe not better",),
                   report={"T": 80})


@pytest.fixture
def config(db_url: str, artefacts_root: Path) -> PodiumConfig:
    return PodiumConfig.model_validate({"database": {"url": db_url},
                                        "artefacts_root": str(artefacts_root)})


def _settle(engine, version_id: str, net: np.ndarray) -> None:
    with write_session(engine) as session:
        for i, value in enumerate(net):
            session.add(ShadowScore(version_id=version_id,
                                    day=dt.date(2025, 7, 1) + dt.timedelta(days=i),
                                    gross=float(value) + 1e-4, turnover=0.1, cost=1e-4,
                                    net=float(value), n_assets=50))
        session.commit()


def _audit(engine) -> list[AuditEntry]:
    with read_session(engine) as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))))


def _events(engine) -> list[Event]:
    with read_session(engine) as session:
        return list(session.exec(select(Event).order_by(col(Event.id))))


def test_a_refused_promotion_is_audited_and_moves_nothing(engine, artefacts_root, register):
    version_id = register("v1-linear")
    with pytest.raises(GateRejected, match="the gate refuses .* \\(FAIL\\): net Sharpe") as info, \
            write_session(engine) as session:
        promote_version(session, version_id=version_id, actor="alice", reason="looks better",
                        gate=FAIL, artefacts_root=artefacts_root, request_id="req-7")
    assert info.value.code == "gate_rejected" and info.value.extra["gate"]["verdict"] == "FAIL"
    refused = _audit(engine)[-1]
    assert (refused.action, refused.version_id, refused.from_state, refused.to_state) == (
        "promote_refused", version_id, "challenger", "challenger")
    assert (refused.actor, refused.reason, refused.request_id) == ("alice", "looks better",
                                                                   "req-7")
    assert refused.gate_report["verdict"] == "FAIL" and refused.gate_report["T"] == 80
    assert refused.gate_report["reasons"] == ["net Sharpe not better"]
    assert refused.forced is False and refused.displaced_version_id is None
    with read_session(engine) as session:
        assert store.get_version(session, version_id).state == "challenger"
    assert [e.kind for e in _events(engine)] == ["version.registered"]  # a refusal is no event


def test_without_a_gate_decision_the_refusal_is_audited_with_no_report(engine, artefacts_root,
                                                                       register):
    version_id = register("v1-linear")
    with pytest.raises(GateRejected, match="no gate decision for") as info, \
            write_session(engine) as session:
        promote_version(session, version_id=version_id, actor="bob", reason="r", gate=None,
                        artefacts_root=artefacts_root)
    assert info.value.code == "gate_rejected"
    refused = _audit(engine)[-1]
    assert (refused.action, refused.actor, refused.gate_report) == ("promote_refused", "bob",
                                                                    None)


def test_an_illegal_or_stale_request_is_refused_before_the_gate_and_not_audited(
        engine, artefacts_root, register):
    champion, challenger = register("v1-linear"), register("v2-linear")
    with write_session(engine) as session:
        promote_version(session, version_id=champion, actor="a", reason="first", gate=None,
                        force=True, artefacts_root=artefacts_root)
    before = len(_audit(engine))
    with pytest.raises(InvalidTransition, match="already the champion") as illegal, \
            write_session(engine) as session:
        promote_version(session, version_id=champion, actor="a", reason="r", gate=FAIL,
                        artefacts_root=artefacts_root)
    assert illegal.value.code == "invalid_transition"
    with pytest.raises(ChampionChanged, match="someone promoted first") as stale, \
            write_session(engine) as session:
        promote_version(session, version_id=challenger, actor="a", reason="r", gate=FAIL,
                        artefacts_root=artefacts_root, expected_champion=store.NO_CHAMPION)
    assert stale.value.code == "champion_changed"
    assert len(_audit(engine)) == before


def test_the_service_runs_the_gate_on_shadow_evidence(engine, config, register):
    champion, challenger = register("v1-linear"), register("v2-linear")
    forced = promote(engine, version_id=champion, actor="ops", reason="first", config=config,
                     force=True)
    assert forced.transition.version.state == "champion"
    rng = np.random.default_rng(7)
    _settle(engine, champion, rng.normal(0.0, 0.01, 200))
    _settle(engine, challenger, rng.normal(0.004, 0.01, 200))
    announced = []
    promoted = promote(engine, version_id=challenger, actor="alice", reason="better net",
                       config=config, announce=lambda: announced.append(True))
    assert promoted.gate is not None and promoted.gate.passed and promoted.gate.verdict == "PASS"
    assert promoted.transition.displaced.version_id == champion and announced == [True]
    entry = _audit(engine)[-1]
    assert entry.action == "promote" and entry.gate_report["verdict"] == "PASS"


def test_the_service_audits_a_refusal_on_thin_evidence_and_announces_nothing(
        engine, config, register):
    version_id = register("v1-linear")
    announced = []
    with pytest.raises(GateRejected, match="INSUFFICIENT_DATA") as info:
        promote(engine, version_id=version_id, actor="alice", reason="try", config=config,
                announce=lambda: announced.append(True))
    assert info.value.code == "gate_rejected" and announced == []
    refused = _audit(engine)[-1]
    assert refused.action == "promote_refused" and refused.actor == "alice"
    assert refused.gate_report["verdict"] == "INSUFFICIENT_DATA"


def test_the_service_pins_the_champion_the_gate_judged_against(engine, config, register,
                                                              monkeypatch):
    first, second = register("v1-linear"), register("v2-linear")

    def judged_then_someone_promotes(session, *, version_id, config):
        outcome = gate_outcome(session, version_id=version_id, config=config)
        with write_session(engine) as other:  # lands between the evidence and the swap
            promote_version(other, version_id=first, actor="bob", reason="meanwhile",
                            gate=None, force=True, artefacts_root=config.artefacts_root)
        return outcome

    monkeypatch.setattr("registry.promotion.gate_outcome", judged_then_someone_promotes)
    with pytest.raises(ChampionChanged, match="expected champion \\(none\\)") as info:
        promote(engine, version_id=second, actor="alice", reason="r", config=config)
    assert info.value.extra["current_champion"] == first
    assert [e.action for e in _audit(engine)][-1] == "promote"  # bob's; no refusal recorded


def test_a_forced_promotion_needs_a_reason(engine, config, register):
    version_id = register("v1-linear")
    with pytest.raises(InvalidInput, match="a forced promotion needs a reason") as info:
        promote(engine, version_id=version_id, actor="ops", reason="  ", config=config,
                force=True)
    assert info.value.code == "reason_required"


def test_gate_outcome_of_a_version_that_is_not_a_challenger(engine, config, artefacts_root,
                                                             register):
    version_id = register("v1-linear")
    with write_session(engine) as session:
        promote_version(session, version_id=version_id, actor="a", reason="first", gate=None,
                        force=True, artefacts_root=artefacts_root)
    with read_session(engine) as session:
        outcome = gate_outcome(session, version_id=version_id, config=config)
    assert (outcome.passed, outcome.verdict) == (False, "NOT_A_CHALLENGER")
    assert outcome.reasons == (f"{version_id} is champion",)
