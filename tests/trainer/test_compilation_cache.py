"""JAX's persistent compilation cache: private, beside the artefacts, off when unsafe."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import compilation_cache
from trainer.compilation_cache import ENV, enable_compilation_cache

COMPILE = """
import sys
import jax, jax.numpy as jnp
from trainer.compilation_cache import enable_compilation_cache
print(enable_compilation_cache(sys.argv[1]))
print(jax.jit(lambda x: jnp.tanh(x) * 3)(jnp.ones(7)).sum())
"""


def test_a_fresh_process_writes_its_programs_to_a_private_cache(tmp_path: Path) -> None:
    cache = tmp_path / "artefacts" / "cache" / "jax"
    env = {k: v for k, v in os.environ.items() if k != ENV}
    for _ in range(2):  # the second process finds the entries the first one wrote
        proc = subprocess.run([sys.executable, "-c", COMPILE, str(cache)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.splitlines()[0] == str(cache)
        assert any(cache.iterdir()), "nothing was cached"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compilation_cache, "_enabled", None)
    monkeypatch.delenv(ENV, raising=False)


@pytest.mark.usefixtures("fresh")
def test_a_cache_others_can_write_to_is_not_used(tmp_path: Path, caplog) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="trainer.compilation_cache"):
        assert enable_compilation_cache(shared) is None
    assert "not private" in caplog.text and ENV in caplog.text


@pytest.mark.usefixtures("fresh")
def test_a_cache_that_cannot_be_created_or_is_turned_off_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="trainer.compilation_cache"):
        assert enable_compilation_cache(blocked / "jax") is None
    assert "cannot create" in caplog.text
    monkeypatch.setenv(ENV, "")
    assert enable_compilation_cache(tmp_path / "unused") is None
    assert not (tmp_path / "unused").exists()
