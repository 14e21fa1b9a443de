import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from registry import store
from registry.db import read_session, write_session
from registry.errors import (
    AlreadyExists,
    ChampionChanged,
    GateRejected,
    IntegrityFailure,
    InvalidInput,
    InvalidTransition,
    NotFound,
)
from registry.promotion import GateOutcome, promote_version

PASS = GateOutcome(passed=True, verdict="PASS", reasons=("better net Sharpe",),
                   report={"T": 80, "mean_diff": 0.001})
FAIL = GateOutcome(passed=False, verdict="INSUFFICIENT_DATA", reasons=("12 of 60 days",))


def promote(engine, root: Path, version_id: str, **kw):
    kw.setdefault("gate", PASS)
    kw.setdefault("reason", "better net of cost")
    with write_session(engine) as session:
        return promote_version(session, version_id=version_id, actor="alice",
                               artefacts_root=root, **kw)


def states(engine) -> dict[str, str]:
    with read_session(engine) as session:
        return {v.version_id: v.state for v in store.list_versions(session)}


def test_register_is_challenger_first_and_idempotent(engine, artefacts_root, make_bundle):
    version_id, fp = make_bundle("v1-linear")
    for expected_created in (True, False):
        with write_session(engine) as session:
            version, created = store.register_version(
                session, track="equities-daily", version_id=version_id, fingerprint=fp,
                artefacts_root=artefacts_root, actor="zoo", spec_name="linear-5d")
        assert created is expected_created
        assert version.state == "challenger"
    with read_session(engine) as session:
        assert [e.action for e in store.list_audit(session)] == ["register"]
        assert store.get_version(session, version_id).bundle_path == \
            f"models/equities-daily/{version_id}"
        assert store.list_tracks(session) == ["equities-daily"]


def test_details_are_stored_as_strict_json(engine, artefacts_root, make_bundle):
    version_id, fp = make_bundle("v1-linear")
    with write_session(engine) as session:
        store.register_version(session, track="equities-daily", version_id=version_id,
                               fingerprint=fp, artefacts_root=artefacts_root, actor="zoo",
                               details={"val_loss": float("nan"), "ok": [1.5, float("inf")]})
    with read_session(engine) as session:
        assert store.get_version(session, version_id).details == {"val_loss": None,
                                                                  "ok": [1.5, None]}


def test_same_id_with_another_fingerprint_is_refused(engine, artefacts_root, make_bundle):
    version_id, fp = make_bundle("v1-linear", seed="a")
    with write_session(engine) as session:
        store.register_version(session, track="equities-daily", version_id=version_id,
                               fingerprint=fp, artefacts_root=artefacts_root, actor="zoo")
    other = fp[:8] + "f" * 56
    with pytest.raises(AlreadyExists, match="different fingerprint") as info, \
            write_session(engine) as session:
        store.register_version(session, track="equities-daily", version_id=version_id,
                               fingerprint=other, artefacts_root=artefacts_root, actor="zoo")
    assert info.value.status == 409


def test_register_verifies_the_bundle_first(engine, artefacts_root, make_bundle):
    version_id, fp = make_bundle("v1-linear")
    weights = artefacts_root / "models/equities-daily" / version_id / "checkpoint/weights.bin"
    data = bytearray(weights.read_bytes())
    data[10] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityFailure, match="checksum mismatch for checkpoint/weights.bin"), \
            write_session(engine) as session:
        store.register_version(session, track="equities-daily", version_id=version_id,
                               fingerprint=fp, artefacts_root=artefacts_root, actor="zoo")
    assert states(engine) == {}
    with pytest.raises(InvalidInput, match="does not match fingerprint"), \
            write_session(engine) as session:
        store.register_version(session, track="equities-daily", version_id=version_id,
                               fingerprint="0" * 64, artefacts_root=artefacts_root, actor="z")


def test_promote_swaps_and_audits(engine, artefacts_root, register):
    a, b = register("v1-linear"), register("v2-resmom")
    first = promote(engine, artefacts_root, a, expected_champion=store.NO_CHAMPION)
    assert first.displaced is None
    second = promote(engine, artefacts_root, b, expected_champion=a, request_id="req-1")
    assert second.displaced.version_id == a
    assert states(engine) == {a: "retired", b: "champion"}
    with read_session(engine) as session:
        assert store.resolve_champion(session, "equities-daily").version_id == b
        entry = store.list_audit(session, track="equities-daily")[0]
    assert (entry.action, entry.version_id, entry.from_state, entry.to_state) == \
        ("promote", b, "challenger", "champion")
    assert entry.displaced_version_id == a and entry.request_id == "req-1"
    assert entry.gate_report["verdict"] == "PASS" and entry.gate_report["T"] == 80
    assert entry.actor == "alice" and entry.forced is False


def test_gate_refusal_and_forcing(engine, artefacts_root, register):
    a = register("v1-linear")
    with pytest.raises(GateRejected, match="INSUFFICIENT_DATA.*12 of 60 days"):
        promote(engine, artefacts_root, a, gate=FAIL)
    assert states(engine) == {a: "challenger"}
    with pytest.raises(InvalidInput, match="needs a reason"):
        promote(engine, artefacts_root, a, gate=FAIL, force=True, reason="")
    forced = promote(engine, artefacts_root, a, gate=FAIL, force=True, reason="hotfix")
    assert forced.audit.forced is True and forced.audit.gate_report["verdict"] == \
        "INSUFFICIENT_DATA"


def test_compare_and_set(engine, artefacts_root, register):
    a, b = register("v1-linear"), register("v2-resmom")
    promote(engine, artefacts_root, a)
    with pytest.raises(ChampionChanged, match="expected champion .* but it is") as info:
        promote(engine, artefacts_root, b, expected_champion=store.NO_CHAMPION)
    assert info.value.extra["current_champion"] == a
    assert states(engine) == {a: "champion", b: "challenger"}


def test_illegal_transitions(engine, artefacts_root, register):
    a, b = register("v1-linear"), register("v2-resmom")
    promote(engine, artefacts_root, a)
    with pytest.raises(InvalidTransition, match="already the champion"):
        promote(engine, artefacts_root, a)
    with pytest.raises(InvalidTransition, match="never retired directly"), \
            write_session(engine) as session:
        store.retire_version(session, version_id=a, actor="bob", reason="old")
    with write_session(engine) as session:
        store.retire_version(session, version_id=b, actor="bob", reason="lost")
    with pytest.raises(InvalidTransition, match="it is retired"):
        promote(engine, artefacts_root, b)
    with pytest.raises(NotFound, match="unknown version") as info:
        promote(engine, artefacts_root, "v9-20250101-deadbeef")
    assert info.value.code == "unknown_version"
    with pytest.raises(InvalidInput, match="invalid version id"):
        promote(engine, artefacts_root, "../../etc/passwd")


def test_promote_rechecks_integrity(engine, artefacts_root, register):
    a = register("v1-linear")
    (artefacts_root / "models/equities-daily" / a / "metadata.json").write_text("{}\n")
    with pytest.raises(IntegrityFailure, match="checksum mismatch for metadata.json"):
        promote(engine, artefacts_root, a)
    assert states(engine) == {a: "challenger"}


def test_rollback_walks_back_the_champions(engine, artefacts_root, register):
    a, b, c = (register(label) for label in ("v1-linear", "v2-resmom", "v3-mlp"))
    for version_id in (a, b, c):
        promote(engine, artefacts_root, version_id)
    for expected in (b, a):
        with write_session(engine) as session:
            done = store.rollback_track(session, track="equities-daily", actor="ops",
                                        reason="regression", artefacts_root=artefacts_root)
        assert done.version.version_id == expected
    assert states(engine) == {a: "champion", b: "retired", c: "retired"}
    with pytest.raises(InvalidTransition, match="did not replace a champion"), \
            write_session(engine) as session:
        store.rollback_track(session, track="equities-daily", actor="ops", reason="again",
                             artefacts_root=artefacts_root)
    with pytest.raises(InvalidInput, match="needs a reason"), write_session(engine) as session:
        store.rollback_track(session, track="equities-daily", actor="ops", reason=" ",
                             artefacts_root=artefacts_root)
    with read_session(engine) as session:
        actions = [e.action for e in store.list_audit(session)]
    assert actions[:2] == ["rollback", "rollback"]


def test_rollback_without_champion(engine, artefacts_root, register):
    register("v1-linear")
    with pytest.raises(NotFound, match="has no champion yet"), write_session(engine) as session:
        store.rollback_track(session, track="equities-daily", actor="ops", reason="x",
                             artefacts_root=artefacts_root)
    with pytest.raises(NotFound, match="unknown track"), read_session(engine) as session:
        store.resolve_champion(session, "nope")


def test_database_refuses_a_second_champion(engine, register, artefacts_root):
    a, b = register("v1-linear"), register("v2-resmom")
    promote(engine, artefacts_root, a)
    with pytest.raises(IntegrityError), write_session(engine) as session:
        session.exec(text(f"UPDATE model_version SET state = 'champion' "
                          f"WHERE version_id = '{b}'"))
        session.commit()


def test_listing_filters_and_pages(engine, register):
    ids = [register(f"v{i}-x", cutoff=dt.date(2025, 1, i + 1)) for i in range(5)]
    register("v1-other", track="credit-daily")
    with read_session(engine) as session:
        assert len(store.list_versions(session, track="equities-daily")) == 5
        assert len(store.list_versions(session, limit=2)) == 2
        assert store.list_versions(session, state="champion") == []
        with pytest.raises(InvalidInput, match="unknown state"):
            store.list_versions(session, state="king")
        assert set(ids) == {v.version_id for v in store.list_versions(
            session, track="equities-daily")}
        assert store.list_tracks(session) == ["credit-daily", "equities-daily"]
