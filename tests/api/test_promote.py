"""Promotion through the API: the gate, compare-and-set, idempotency; retire and rollback."""

from __future__ import annotations

import datetime as dt
import sys

import numpy as np
from sqlmodel import col, select

from registry.db import read_session, write_session
from registry.models import AuditEntry, Event, ShadowScore
from tests.api.conftest import API, TRACK, assert_problem


def _promote(client, auth, version_id, scope="admin", key=None, **body):
    headers = {**auth(scope), **({"Idempotency-Key": key} if key else {})}
    return client.post(f"{API}/versions/{version_id}/promote", headers=headers,
                       json={"reason": "because", **body})


def _settle(engine, version_id: str, net: np.ndarray, start=dt.date(2025, 7, 1)) -> None:
    with write_session(engine) as session:
        for i, value in enumerate(net):
            session.add(ShadowScore(version_id=version_id, day=start + dt.timedelta(days=i),
                                    gross=float(value) + 1e-4, turnover=0.1, cost=1e-4,
                                    net=float(value), n_assets=50))
        session.commit()


def test_gate_refuses_without_evidence_and_the_report_is_in_the_body(client, auth,
                                                                     register) -> None:
    version_id = register("v1-linear")
    body = assert_problem(_promote(client, auth, version_id, scope="promote"), 409,
                          "gate_rejected")
    assert body["gate"]["passed"] is False
    assert body["gate"]["verdict"] == "INSUFFICIENT_DATA" and body["gate"]["reasons"]
    assert client.get(f"{API}/versions/{version_id}", headers=auth("read")).json()[
        "state"] == "challenger"
    refused = client.get(f"{API}/tracks/{TRACK}/audit?limit=1", headers=auth("read")).json()[
        "items"][0]
    assert (refused["action"], refused["version_id"], refused["actor"], refused["reason"]) == (
        "promote_refused", version_id, "promote-bot", "because")
    assert refused["from_state"] == refused["to_state"] == "challenger"
    assert refused["gate_report"] == body["gate"] and refused["request_id"]


def test_gate_passes_a_clearly_better_challenger_and_the_audit_keeps_the_report(
        client, auth, register, engine) -> None:
    champion, challenger = register("v1-linear"), register("v2-linear")
    assert _promote(client, auth, champion, force=True).status_code == 200
    rng = np.random.default_rng(7)
    _settle(engine, champion, rng.normal(0.0, 0.01, 200))
    _settle(engine, challenger, rng.normal(0.004, 0.01, 200))
    response = _promote(client, auth, challenger, scope="promote",
                        expected_champion=champion)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["gate"]["passed"] is True and answer["gate"]["verdict"] == "PASS"
    assert answer["transition"]["displaced_version_id"] == champion
    assert answer["transition"]["forced"] is False
    audit = client.get(f"{API}/tracks/{TRACK}/audit?limit=1", headers=auth("read")).json()
    assert audit["items"][0]["gate_report"]["verdict"] == "PASS"
    assert audit["items"][0]["actor"] == "promote-bot"


def test_without_the_gate_module_only_a_forced_promotion_goes_through(
        client, auth, register, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "registry.evidence", None)  # import now fails
    version_id = register("v1-linear")
    assert_problem(_promote(client, auth, version_id), 503, "gate_unavailable")
    forced = _promote(client, auth, version_id, force=True)
    assert forced.status_code == 200 and forced.json()["gate"] is None


def test_force_needs_admin_and_a_real_reason(client, auth, register) -> None:
    version_id = register("v1-linear")
    assert_problem(_promote(client, auth, version_id, scope="promote", force=True), 403,
                   "insufficient_scope")
    response = client.post(f"{API}/versions/{version_id}/promote", headers=auth("admin"),
                           json={"reason": "   ", "force": True})
    assert_problem(response, 422, "reason_required")


def test_only_a_challenger_can_be_promoted(client, auth, register) -> None:
    version_id = register("v1-linear")
    assert _promote(client, auth, version_id, force=True).status_code == 200
    body = assert_problem(_promote(client, auth, version_id, force=True), 409,
                          "invalid_transition")
    assert "already the champion" in body["detail"]
    assert_problem(_promote(client, auth, version_id), 409, "invalid_transition")


def test_expected_champion_is_a_compare_and_set(client, auth, register) -> None:
    first, second, third = register("v1-a"), register("v2-b"), register("v3-c")
    body = assert_problem(_promote(client, auth, first, force=True, expected_champion=second),
                          409, "champion_changed")
    assert body["current_champion"] is None
    assert _promote(client, auth, first, force=True, expected_champion="").status_code == 200
    assert_problem(_promote(client, auth, second, force=True, expected_champion=""), 409,
                   "champion_changed")
    ok = _promote(client, auth, second, force=True, expected_champion=first)
    assert ok.status_code == 200
    body = assert_problem(_promote(client, auth, third, force=True, expected_champion=first),
                          409, "champion_changed")
    assert body["current_champion"] == second


def test_idempotency_key_replays_the_first_answer(client, auth, register, engine) -> None:
    version_id, other = register("v1-linear"), register("v2-linear")
    first = _promote(client, auth, version_id, key="k-1", force=True)
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    again = _promote(client, auth, version_id, key="k-1", force=True)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    with read_session(engine) as session:
        promotions = session.exec(select(AuditEntry).where(AuditEntry.action == "promote")).all()
    assert len(promotions) == 1
    assert_problem(_promote(client, auth, version_id, key="k-1", force=True, reason="other"),
                   422, "idempotency_key_reused")
    assert_problem(_promote(client, auth, other, key="k-1", force=True), 422,
                   "idempotency_key_reused")
    # errors are answers too: the refusal is replayed, not re-run
    refused = _promote(client, auth, version_id, key="k-2", force=True)
    assert_problem(refused, 409, "invalid_transition")
    replay = _promote(client, auth, version_id, key="k-2", force=True)
    assert replay.status_code == 409 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["code"] == "invalid_transition"
    # keys are per token: another token's k-1 is its own request
    superuser = client.post(f"{API}/versions/{other}/retire",
                            headers={**auth("promote"), "Idempotency-Key": "k-1"},
                            json={"reason": "not needed"})
    assert superuser.status_code == 200
    assert_problem(client.post(f"{API}/versions/{other}/retire",
                               headers={**auth("promote"), "Idempotency-Key": "bad key!"},
                               json={"reason": "x"}), 422, "invalid_idempotency_key")


def test_retire_and_rollback_are_audited(client, auth, register) -> None:
    first, second, spare = register("v1-a"), register("v2-b"), register("v3-c")
    assert_problem(client.post(f"{API}/tracks/{TRACK}/rollback", headers=auth("promote"),
                               json={"reason": "nothing to roll back"}), 404, "no_champion")
    assert _promote(client, auth, first, force=True).status_code == 200
    assert _promote(client, auth, second, force=True).status_code == 200
    retired = client.post(f"{API}/versions/{spare}/retire", headers=auth("promote"),
                          json={"reason": "superseded"})
    assert retired.status_code == 200
    assert retired.json()["transition"]["to_state"] == "retired"
    body = assert_problem(client.post(f"{API}/versions/{second}/retire",
                                      headers=auth("promote"), json={"reason": "x"}),
                          409, "invalid_transition")
    assert "never retired directly" in body["detail"]
    rolled = client.post(f"{API}/tracks/{TRACK}/rollback", headers=auth("promote"),
                         json={"reason": "v2 misbehaves"})
    assert rolled.status_code == 200, rolled.text
    moved = rolled.json()["transition"]
    assert moved["action"] == "rollback" and moved["version_id"] == first
    assert moved["displaced_version_id"] == second and moved["actor"] == "promote-bot"
    champion = client.get(f"{API}/tracks/{TRACK}/champion", headers=auth("read")).json()
    assert champion["version_id"] == first
    audit = client.get(f"{API}/tracks/{TRACK}/audit", headers=auth("read")).json()["items"]
    assert [(e["action"], e["reason"]) for e in audit[:2]] == [
        ("rollback", "v2 misbehaves"), ("retire", "superseded")]


def test_every_transition_has_its_event_and_a_refused_one_has_none(client, auth, register,
                                                                   engine) -> None:
    first, second = register("v1-a"), register("v2-b")
    assert _promote(client, auth, first, force=True).status_code == 200
    assert _promote(client, auth, second).status_code == 409  # the gate refuses: no event
    with read_session(engine) as session:
        audits = session.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
        events = session.exec(select(Event).order_by(col(Event.id))).all()
    assert audits[-1].action == "promote_refused"  # audited, but nothing moved
    assert [e.audit_id for e in events] == [a.id for a in audits[:-1]]
    assert [e.kind for e in events] == ["version.registered", "version.registered",
                                        "version.promoted"]
    listed = client.get(f"{API}/events?after={events[0].id}&limit=1", headers=auth("read"))
    page = listed.json()
    assert [e["id"] for e in page["items"]] == [events[1].id] and page["next"]
    promoted = client.get(page["next"], headers=auth("read")).json()["items"][0]
    assert promoted["payload"]["type"] == "version.promoted"
    assert promoted["payload"]["actor"] == "admin-bot" and promoted["payload"]["forced"]
    assert promoted["deliveries"] == []
    assert_problem(client.get(f"{API}/events/999999/deliveries", headers=auth("admin")), 404,
                   "unknown_event")
