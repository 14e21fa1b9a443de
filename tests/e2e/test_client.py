"""``load_champion`` against a real server: it follows a promotion without a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.client import Client, load_champion
from registry.errors import IntegrityFailure, NotFound
from tests.api.conftest import TRACK

pytestmark = pytest.mark.slow


class FakePredictor:
    """Stands in for ``trainer.load_model`` (a real bundle needs training): names its bundle."""

    def __init__(self, bundle: Path) -> None:
        self.version_id = json.loads((bundle / "metadata.json").read_text())["version_id"]

    def predict(self, features: object) -> str:
        return self.version_id


def test_load_champion_swaps_after_a_promotion(server, tokens, register,
                                               artefacts_root) -> None:
    first, second, third = register("v1-a"), register("v2-b"), register("v3-c")
    with Client(server.url, tokens["admin"]) as admin:
        with pytest.raises(NotFound, match="no champion"):
            load_champion(TRACK, url=server.url, token=tokens["read"],
                          artefacts_root=artefacts_root, loader=FakePredictor)
        admin.promote(first, "bootstrap", force=True)
        predictor = load_champion(TRACK, url=server.url, token=tokens["read"],
                                  artefacts_root=artefacts_root, refresh_seconds=0,
                                  loader=FakePredictor)
        assert predictor.predict(None) == first and predictor.version_id == first
        assert predictor.refresh() is False  # unchanged: a 304, nothing reloaded
        admin.promote(second, "better", force=True)
        assert predictor.predict(None) == second  # the next call sees the new champion
        admin.promote(third, "even better", force=True)
        (artefacts_root / "models" / TRACK / third / "metadata.json").write_text("{}")
        assert predictor.refresh() is False  # a tampered new champion is not loaded...
        assert predictor.predict(None) == second  # ...and the current one keeps serving
        assert isinstance(predictor.last_error, IntegrityFailure)
        predictor.close()
