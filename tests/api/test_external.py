"""External versions over REST: register, submit daily predictions, every refusal."""

from __future__ import annotations

import datetime as dt
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine

from registry import store
from registry.db import read_session, write_session
from registry.models import ModelVersion, utcnow
from tests import external_fixtures
from tests.api.conftest import API, assert_problem
from tests.external_fixtures import (
    SUBMISSION,
    TRACK,
    expected_version_id,
    land,
    landed,
    next_day,
)

ext_config = external_fixtures.ext_config
ext_client = external_fixtures.ext_client

pytestmark = pytest.mark.usefixtures("tokens")


@pytest.fixture
def external(ext_client, auth) -> str:
    response = ext_client.post(f"{API}/external-versions", json=SUBMISSION, headers=auth("promote"))
    assert response.status_code == 201, response.text
    return response.json()["version_id"]


def put(client, auth, version_id, day, body, content_type="application/json", scope="promote"):
    content = json.dumps(body).encode() if isinstance(body, dict) else body
    return client.put(f"{API}/versions/{version_id}/predictions/{day}", content=content,
                      headers={**auth(scope), "Content-Type": content_type})


def parquet(assets, scores) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"asset": pa.array(assets, pa.string()),
                             "score": pa.array(scores, pa.float64())}), sink)
    return sink.getvalue()


def scores(n: int = 12, *, offset: float = 0.0) -> dict[str, float]:
    return {f"A{i:02d}": (i - 5.5) / 10 + offset for i in range(n)}


def nothing_stored(client, auth, version_id, ext_config) -> None:
    answer = client.get(f"{API}/versions/{version_id}/predictions", headers=auth("read"))
    assert answer.status_code == 200 and answer.json()["items"] == []
    assert not list((ext_config.artefacts_root / "shadow").rglob("*.parquet"))


# --------------------------------------------------------------------------- register


def test_register_external_version(ext_client, auth, engine: Engine) -> None:
    response = ext_client.post(f"{API}/external-versions", json=SUBMISSION, headers=auth("promote"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["version_id"] == expected_version_id(SUBMISSION)
    assert (body["kind"], body["state"], body["track"]) == ("external", "challenger", TRACK)
    assert body["provenance"] == {"uri": SUBMISSION["uri"], "digest": SUBMISSION["digest"],
                                  "metadata": SUBMISSION["metadata"]}
    assert body["bundle_path"] == "" and body["details"]["description"] == \
        SUBMISSION["description"]
    with read_session(engine) as session:
        entries = store.list_audit(session, version_id=body["version_id"])
    assert [(e.action, e.actor, e.to_state) for e in entries] == [
        ("register", "promote-bot", "challenger")]


def test_registering_the_same_submission_again_is_idempotent(ext_client, auth, engine) -> None:
    first = ext_client.post(f"{API}/external-versions", json=SUBMISSION, headers=auth("promote"))
    again = ext_client.post(f"{API}/external-versions", json=SUBMISSION, headers=auth("admin"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["version_id"] == first.json()["version_id"]
    assert again.json()["created_at"] == first.json()["created_at"]
    with read_session(engine) as session:
        assert len(store.list_audit(session, version_id=first.json()["version_id"])) == 1


def test_a_different_submission_with_a_taken_id_is_409(ext_client, auth, engine) -> None:
    version_id = expected_version_id(SUBMISSION)
    with write_session(engine) as session:  # the id, taken by a version with another fingerprint
        store.add_version(session, ModelVersion(
            version_id=version_id, track=TRACK, label="vendor-signal",
            train_cutoff=dt.date(2024, 7, 1), fingerprint=version_id[-8:] + "0" * 56,
            bundle_path="models/x", bundle_digest="0" * 64, created_at=utcnow(),
            updated_at=utcnow()), actor="test", reason="registered")
    response = ext_client.post(f"{API}/external-versions", json=SUBMISSION, headers=auth("promote"))
    body = assert_problem(response, 409, "version_conflict")
    assert "different fingerprint" in body["detail"]


def test_another_description_is_another_version(ext_client, auth) -> None:
    one = ext_client.post(f"{API}/external-versions", json=SUBMISSION,
                          headers=auth("promote")).json()
    other = ext_client.post(f"{API}/external-versions", json={**SUBMISSION, "description": "v2"},
                            headers=auth("promote")).json()
    assert one["version_id"] != other["version_id"]
    assert other["version_id"] == expected_version_id({**SUBMISSION, "description": "v2"})


@pytest.mark.parametrize(("change", "status", "code", "words"), [
    ({"uri": None, "digest": None}, 422, "provenance_required", "provenance"),
    ({"uri": "not a uri"}, 422, "invalid_uri", "absolute URI"),
    ({"digest": "sha256:XYZ"}, 422, "invalid_digest", "lower-case hex"),
    ({"label": "Bad Label"}, 422, "invalid_label", "invalid label 'Bad Label'"),
    ({"track": "a..b"}, 422, "invalid_track", "invalid track 'a..b'"),
    ({"train_cutoff": "2024-02-30"}, 422, "validation_error", "train_cutoff"),
    ({"metadata": {"blob": "x" * 20_000}}, 413, "payload_too_large", "limit of 4096 bytes"),
])
def test_register_refuses_bad_input(ext_client, auth, change, status, code, words) -> None:
    response = ext_client.post(f"{API}/external-versions", json={**SUBMISSION, **change},
                               headers=auth("promote"))
    body = assert_problem(response, status, code)
    assert words in body["detail"] + json.dumps(body.get("errors", []))
    assert ext_client.get(f"{API}/versions", headers=auth("read")).json()["items"] == []


def test_register_needs_the_promote_scope(ext_client, auth) -> None:
    response = ext_client.post(f"{API}/external-versions", json=SUBMISSION, headers=auth("read"))
    assert_problem(response, 403, "insufficient_scope")


# --------------------------------------------------------------------------- submit


def test_submit_json_records_arrival_and_counts_unknown_assets(ext_client, auth, external,
                                                               ext_config) -> None:
    day = next_day(ext_config)
    before = utcnow()
    response = put(ext_client, auth, external, day,
                   {"scores": {**scores(), "ZZZ": 1.0, "QQQ": -1.0}})
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["created"] is True
    assert sorted(receipt["unknown_assets"]) == ["QQQ", "ZZZ"]
    stored = receipt["submission"]
    assert (stored["day"], stored["n_assets"], stored["n_unknown"], stored["actor"]) == (
        day.isoformat(), 12, 2, "promote-bot")
    assert dt.datetime.fromisoformat(stored["arrived_at"]) >= before
    listed = ext_client.get(f"{API}/versions/{external}/predictions", headers=auth("read"))
    assert listed.json()["items"] == [stored]
    table = pq.read_table(ext_config.artefacts_root / "shadow" / "submissions" / TRACK /
                          external / f"{day:%Y%m%d}.parquet")
    assert dict(zip(table.column("asset").to_pylist(), table.column("score").to_pylist(),
                    strict=True)) == scores()


def test_submit_parquet(ext_client, auth, external, ext_config) -> None:
    day = next_day(ext_config)
    values = scores()
    response = put(ext_client, auth, external, day, parquet(list(values), list(values.values())),
                   content_type="application/vnd.apache.parquet")
    assert response.status_code == 201, response.text
    assert response.json()["submission"]["n_assets"] == 12


def test_resubmitting_the_same_scores_is_idempotent_and_others_are_409(
        ext_client, auth, external, ext_config) -> None:
    day = next_day(ext_config)
    first = put(ext_client, auth, external, day, {"scores": scores()})
    again = put(ext_client, auth, external, day,
                parquet(list(scores()), list(scores().values())), "application/x-parquet")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["created"] is False
    assert again.json()["submission"]["arrived_at"] == first.json()["submission"]["arrived_at"]
    other = put(ext_client, auth, external, day, {"scores": scores(offset=0.5)})
    body = assert_problem(other, 409, "predictions_exist")
    assert "already submitted" in body["detail"]


def test_no_look_ahead_a_landed_day_is_refused(ext_client, auth, external, ext_config) -> None:
    last = landed(ext_config)[-1]
    body = assert_problem(put(ext_client, auth, external, last, {"scores": scores()}), 409,
                          "outcome_landed")
    assert f"returns for {last} have already landed" in body["detail"]
    nothing_stored(ext_client, auth, external, ext_config)


def test_no_look_ahead_after_the_day_lands(ext_client, auth, external, ext_config) -> None:
    day = next_day(ext_config)
    assert land(ext_config, 1) == [day]
    body = assert_problem(put(ext_client, auth, external, day, {"scores": scores()}), 409,
                          "outcome_landed")
    assert "must arrive before its returns land" in body["detail"]
    nothing_stored(ext_client, auth, external, ext_config)


def test_a_retry_after_the_day_landed_answers_what_was_stored(ext_client, auth, external,
                                                              ext_config) -> None:
    day = next_day(ext_config)
    first = put(ext_client, auth, external, day, {"scores": scores()})
    assert first.status_code == 201
    land(ext_config, 1)
    again = put(ext_client, auth, external, day, {"scores": scores()})
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["submission"] == first.json()["submission"]
    assert_problem(put(ext_client, auth, external, day, {"scores": scores(offset=1.0)}), 409,
                   "predictions_exist")


def test_a_day_in_the_past_is_refused(ext_client, auth, external, ext_config) -> None:
    past = dt.date(2024, 7, 6)  # a Saturday between landed days: never lands, still the past
    body = assert_problem(put(ext_client, auth, external, past, {"scores": scores()}), 409,
                          "outcome_landed")
    assert "is in the past" in body["detail"]
    nothing_stored(ext_client, auth, external, ext_config)


def test_a_day_not_after_the_train_cutoff_is_refused(ext_client, auth, ext_config) -> None:
    future = next_day(ext_config) + dt.timedelta(days=7)
    late = {**SUBMISSION, "train_cutoff": future.isoformat()}
    version_id = ext_client.post(f"{API}/external-versions", json=late,
                                 headers=auth("promote")).json()["version_id"]
    body = assert_problem(put(ext_client, auth, version_id, next_day(ext_config),
                              {"scores": scores()}), 422, "day_not_after_cutoff")
    assert "not after" in body["detail"] and "train cutoff" in body["detail"]
    nothing_stored(ext_client, auth, version_id, ext_config)


@pytest.mark.parametrize(("body", "content_type", "status", "code", "words"), [
    (b'{"scores": {"A00": 0.1, "A01": 0.2, "A00": 0.3}}', "application/json", 422,
     "duplicate_assets", "'A00'"),
    (parquet(["A00", "A01", "A01"], [0.1, 0.2, 0.3]), "application/vnd.apache.parquet", 422,
     "duplicate_assets", "'A01'"),
    (b'{"scores": {"A00": 0.1, "A01": NaN}}', "application/json", 422, "non_finite_score",
     "'A01'"),
    (b'{"scores": {"A00": 1e999, "A01": 0.2}}', "application/json", 422, "non_finite_score",
     "'A00'"),
    (parquet(["A00", "A01"], [0.1, float("inf")]), "application/vnd.apache.parquet", 422,
     "non_finite_score", "'A01'"),
    (parquet(["A00", "A01"], [0.1, None]), "application/vnd.apache.parquet", 422,
     "non_finite_score", "'A01'"),
    (b'{"scores": {"A00": "high"}}', "application/json", 422, "invalid_score", "'A00'"),
    (b'{"scores": {"A00": true}}', "application/json", 422, "invalid_score", "'A00'"),
    (b'{"scores": {}}', "application/json", 422, "no_predictions", "at least one"),
    (b'{"scores": {"NOPE": 0.1, "ZZZ": 0.2}}', "application/json", 422, "no_known_assets",
     "'NOPE'"),
    (b'{"scores": {"A00": 0.1}, "extra": 1}', "application/json", 422,
     "invalid_predictions", "one key"),
    (b'[1, 2]', "application/json", 422, "invalid_predictions", "one key"),
    (b'{"scores": ', "application/json", 422, "invalid_json", "not valid JSON"),
    (b"PAR1 not really", "application/vnd.apache.parquet", 422, "invalid_parquet",
     "not a readable Parquet"),
    (parquet(["A00"], [0.1])[:0] + b"", "application/vnd.apache.parquet", 422,
     "invalid_parquet", "not a readable Parquet"),
    (b"asset,score\nA00,0.1\n", "text/csv", 415, "unsupported_media_type", "text/csv"),
    (json.dumps({"scores": {f"A{i:05d}": 0.1 for i in range(400)}}).encode(),
     "application/json", 413, "payload_too_large", "limit of 4096 bytes"),
])
def test_bad_predictions_are_refused_and_nothing_is_stored(
        ext_client, auth, external, ext_config, body, content_type, status, code, words) -> None:
    response = put(ext_client, auth, external, next_day(ext_config), body, content_type)
    problem = assert_problem(response, status, code)
    assert words in problem["detail"]
    nothing_stored(ext_client, auth, external, ext_config)


def test_a_parquet_body_needs_asset_and_score_columns(ext_client, auth, external,
                                                      ext_config) -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"ticker": ["A00"], "score": [0.1]}), sink)
    response = put(ext_client, auth, external, next_day(ext_config), sink.getvalue(),
                   "application/vnd.apache.parquet")
    problem = assert_problem(response, 422, "invalid_parquet")
    assert "needs columns asset and score; it has ticker, score" in problem["detail"]


def test_a_built_in_version_takes_no_submissions(ext_client, auth, register,
                                                 ext_config) -> None:
    version_id = register("v1-linear", cutoff=dt.date(2024, 2, 1))
    problem = assert_problem(put(ext_client, auth, version_id, next_day(ext_config),
                                 {"scores": scores()}), 409, "not_external")
    assert "built-in version" in problem["detail"]


def test_an_unknown_version_is_404(ext_client, auth, ext_config) -> None:
    problem = assert_problem(put(ext_client, auth, "nope-20240101-0123abcd",
                                 next_day(ext_config), {"scores": scores()}), 404,
                             "unknown_version")
    assert "nope-20240101-0123abcd" in problem["detail"]


def test_submitting_needs_the_promote_scope(ext_client, auth, external, ext_config) -> None:
    response = put(ext_client, auth, external, next_day(ext_config), {"scores": scores()},
                   scope="read")
    assert_problem(response, 403, "insufficient_scope")
    nothing_stored(ext_client, auth, external, ext_config)


def test_an_external_champion_resolves_with_its_provenance(ext_client, auth, external) -> None:
    promoted = ext_client.post(f"{API}/versions/{external}/promote", headers=auth("admin"),
                               json={"reason": "the vendor's signal", "force": True})
    assert promoted.status_code == 200, promoted.text
    response = ext_client.get(f"{API}/tracks/{TRACK}/champion", headers=auth("read"))
    assert response.status_code == 200
    body = response.json()
    assert (body["version_id"], body["kind"], body["bundle_path"]) == (external, "external", "")
    assert body["provenance"] == {"uri": SUBMISSION["uri"], "digest": SUBMISSION["digest"],
                                  "metadata": SUBMISSION["metadata"]}
    assert body["description"] == SUBMISSION["description"]
    again = ext_client.get(f"{API}/tracks/{TRACK}/champion",
                           headers={**auth("read"), "If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
