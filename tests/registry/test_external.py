"""External versions in the store: registration, and promotion and rollback without a bundle."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, update

from registry import store
from registry.db import read_session, write_session
from registry.errors import AlreadyExists, IntegrityFailure, InvalidInput
from registry.external import register_external_version
from registry.models import ModelVersion
from registry.promotion import promote_version
from tests.external_fixtures import SUBMISSION, TRACK, expected_version_id

CUTOFF = dt.date.fromisoformat(SUBMISSION["train_cutoff"])


def add_external(engine: Engine, **change) -> tuple[ModelVersion, bool]:
    fields = {"track": TRACK, "label": SUBMISSION["label"], "train_cutoff": CUTOFF,
              "description": SUBMISSION["description"], "uri": SUBMISSION["uri"],
              "digest": SUBMISSION["digest"], "metadata": SUBMISSION["metadata"], **change}
    with write_session(engine) as session:
        return register_external_version(session, actor="ana", **fields)


def promote(engine: Engine, version_id: str, artefacts_root) -> store.Transition:
    with write_session(engine) as session:
        return promote_version(session, version_id=version_id, actor="ana",
                                     reason="forced in a test", gate=None, force=True,
                                     artefacts_root=artefacts_root)


def test_register_is_idempotent_and_audited(engine: Engine) -> None:
    version, created = add_external(engine)
    again, created_again = add_external(engine)
    assert (created, created_again) == (True, False)
    assert version.version_id == again.version_id == expected_version_id(SUBMISSION)
    assert (again.kind, again.state, again.bundle_path) == ("external", "challenger", "")
    with read_session(engine) as session:
        audit = store.list_audit(session, version_id=version.version_id)
    assert [(a.action, a.actor, a.reason) for a in audit] == [
        ("register", "ana", "registered external version")]


def test_a_taken_id_with_another_fingerprint_is_refused(engine: Engine) -> None:
    version, _ = add_external(engine)
    with write_session(engine) as session:
        session.execute(update(ModelVersion).values(fingerprint="f" * 64))
        session.commit()
    with pytest.raises(AlreadyExists, match="already exists with a different fingerprint") as err:
        add_external(engine)
    assert err.value.code == "version_conflict"


@pytest.mark.parametrize(("change", "code", "message"), [
    ({"uri": None, "digest": None}, "provenance_required", "needs its provenance"),
    ({"uri": "relative/path.pt"}, "invalid_uri", "absolute URI"),
    ({"digest": "md5"}, "invalid_digest", "lower-case hex"),
    ({"metadata": {"x": float("nan")}}, "invalid_metadata", "finite numbers"),
    ({"description": "a\x00b"}, "invalid_description", "no NUL"),
    ({"label": "UPPER"}, "invalid_label", "invalid label"),
])
def test_register_refuses_bad_provenance(engine: Engine, change, code, message) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        add_external(engine, **change)
    assert err.value.code == code
    with read_session(engine) as session:
        assert store.list_versions(session) == []


def test_promote_and_roll_back_between_built_in_and_external(engine, register,
                                                             artefacts_root) -> None:
    builtin = register("v1-linear", track=TRACK)
    external, _ = add_external(engine)
    promote(engine, builtin, artefacts_root)
    moved = promote(engine, external.version_id, artefacts_root)
    assert (moved.version.state, moved.displaced.version_id) == ("champion", builtin)
    with write_session(engine) as session:
        back = store.rollback_track(session, track=TRACK, actor="ana", reason="back",
                                    artefacts_root=artefacts_root)
    assert (back.version.version_id, back.displaced.version_id) == (builtin,
                                                                     external.version_id)
    with read_session(engine) as session:
        assert store.resolve_champion(session, TRACK).version_id == builtin


def test_rollback_restores_an_external_champion(engine, register,
                                                artefacts_root) -> None:
    external, _ = add_external(engine)
    promote(engine, external.version_id, artefacts_root)
    promote(engine, register("v1-linear", track=TRACK), artefacts_root)
    with write_session(engine) as session:
        back = store.rollback_track(session, track=TRACK, actor="ana", reason="back",
                                    artefacts_root=artefacts_root)
    assert back.version.version_id == external.version_id
    assert back.version.kind == "external" and back.version.state == "champion"


def test_an_external_version_whose_provenance_changed_is_not_promoted(engine,
                                                                      artefacts_root) -> None:
    external, _ = add_external(engine)
    with write_session(engine) as session:
        session.execute(update(ModelVersion).values(
            provenance={"uri": "s3://elsewhere/other.pt", "digest": None, "metadata": {}}))
        session.commit()
    with pytest.raises(IntegrityFailure, match="no longer matches the fingerprint") as err:
        promote(engine, external.version_id, artefacts_root)
    assert err.value.code == "integrity_failure"
    with read_session(engine) as session:
        assert store.get_version(session, external.version_id).state == "challenger"
