"""A damaged bundle (a flipped checkpoint byte, a truncated SHA256SUMS) is refused everywhere.

Promotion and rollback answer 422 ``integrity_failure`` and change nothing; for a damaged
*champion*, ``trainer.load_model`` and ``registry.client.load_champion`` refuse it, and the shadow
runner records a ``ShadowError`` for it while it scores the other versions. (A damaged
*challenger* in the shadow runner: tests/shadow/test_runner.py; a consumer that keeps serving
when the new champion is damaged: tests/e2e/test_client.py; a flipped byte in ``load_model``
alone: tests/trainer/test_bundle.py.)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import select

from registry import promotion, store
from registry.client import load_champion
from registry.db import read_session, write_session
from registry.errors import IntegrityFailure
from registry.models import ShadowError
from shadow.runner import run_shadow
from tests.api.conftest import API, TRACK, assert_problem
from tests.faults.conftest import assert_consistent
from tests.zoo.conftest import tiny_config
from trainer import load_model
from trainer.checksums import SUMS_NAME, IntegrityError
from trainer.dataset import land_days


def flip_a_checkpoint_byte(bundle: Path) -> None:
    victim = next(p for p in sorted((bundle / "checkpoint").rglob("*"))
                  if p.is_file() and p.stat().st_size > 0)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))


def truncate_the_sums_mid_line(bundle: Path) -> None:
    sums = bundle / SUMS_NAME
    data = sums.read_bytes()
    cut = len(data) // 2
    while data[:cut].endswith(b"\n"):
        cut -= 1
    sums.write_bytes(data[:cut])


def drop_the_last_sums_line(bundle: Path) -> None:
    sums = bundle / SUMS_NAME
    lines = sums.read_text().splitlines(keepends=True)
    sums.write_text("".join(lines[:-1]))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "flipped-checkpoint-byte": (flip_a_checkpoint_byte, "checksum mismatch for checkpoint/"),
    "sums-truncated-mid-line": (truncate_the_sums_mid_line, "truncated"),
    "sums-missing-a-line": (drop_the_last_sums_line, f"not listed in {SUMS_NAME}"),
}


def _bundle(engine, artefacts_root: Path, version_id: str) -> Path:
    with read_session(engine) as session:
        return artefacts_root / store.get_version(session, version_id).bundle_path


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_promoting_or_restoring_a_damaged_bundle_is_refused(damage, client, auth, register,
                                                            engine, artefacts_root) -> None:
    spoil, message = DAMAGE[damage]
    first, second, third = register("v1-a"), register("v2-b"), register("v3-c")
    for version_id in (first, second):
        assert client.post(f"{API}/versions/{version_id}/promote", headers=auth("admin"),
                           json={"reason": "ok", "force": True}).status_code == 200
    spoil(_bundle(engine, artefacts_root, third))
    refused = assert_problem(client.post(
        f"{API}/versions/{third}/promote", headers=auth("admin"),
        json={"reason": "damaged", "force": True}), 422, "integrity_failure")
    assert message in refused["detail"] and third in refused["detail"]
    spoil(_bundle(engine, artefacts_root, first))  # the champion a rollback would restore
    refused = assert_problem(client.post(f"{API}/tracks/{TRACK}/rollback",
                                         headers=auth("admin"), json={"reason": "damaged"}),
                             422, "integrity_failure")
    assert message in refused["detail"] and first in refused["detail"]
    assert assert_consistent(engine, TRACK) == second
    with read_session(engine) as session:
        assert {v.version_id: v.state for v in store.list_versions(session)} == {
            first: "retired", second: "champion", third: "challenger"}


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flipped-checkpoint-byte", "sums-truncated-mid-line"])
def test_a_damaged_champion_is_refused_by_every_consumer(damage, trained, db_url, engine,
                                                         artefacts_root, tokens, serve) -> None:
    spoil, message = DAMAGE[damage]
    template, versions = trained
    shutil.copytree(template, artefacts_root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("runs", "runs.parquet"))
    for version_id, fingerprint, spec in versions:
        with write_session(engine) as session:
            store.register_version(session, track=TRACK, version_id=version_id,
                                   fingerprint=fingerprint, artefacts_root=artefacts_root,
                                   actor="test", spec_name=spec)
    champion, challenger = versions[0][0], versions[1][0]
    with write_session(engine) as session:
        promotion.promote_version(session, version_id=champion, actor="test", reason="bootstrap",
                                  gate=None, artefacts_root=artefacts_root, force=True)
    bundle = _bundle(engine, artefacts_root, champion)
    spoil(bundle)

    with pytest.raises(IntegrityError, match=message):
        load_model(bundle)
    server = serve(db_url, artefacts_root)
    with pytest.raises(IntegrityFailure, match=message) as refused:
        load_champion(TRACK, url=server.url, token=tokens["read"],
                      artefacts_root=artefacts_root)
    assert refused.value.code == "integrity_failure"

    config = tiny_config(db_url, artefacts_root)
    land_days(config.datasets_root, config.market, 10)
    outcomes = {v.version_id: v for v in run_shadow(config, engine).versions}
    assert message in outcomes[champion].error
    assert outcomes[champion].settled == 0
    assert outcomes[challenger].error is None and outcomes[challenger].settled == 9
    with read_session(engine) as session:
        errors = session.exec(select(ShadowError)).all()
    assert [(e.version_id, e.code) for e in errors] == [(champion, "integrity_failure")]
    assert message in errors[0].message
    assert assert_consistent(engine, TRACK) == champion  # refused, never demoted behind our back
