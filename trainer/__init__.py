"""The trainer: one resolved config in, one sealed artefact bundle out.

Knows nothing of the zoo or the registry. Heavy imports (JAX, Flax, Orbax) happen only when
``load_model`` is called, so importing ``trainer`` (for its config or checksums) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The version of what the trainer makes of a config (the same config and data give the same
# weights under one version, not across two). Part of every version's fingerprint, so a change
# to the trainer that changes its weights gives its models new version ids.
TRAINER_CODE_VERSION = "2"

if TYPE_CHECKING:  # pragma: no cover
    from trainer.serving import Predictor


def load_model(bundle_dir: Any, *, expected_digest: str | None = None) -> Predictor:
    """Verify a bundle's SHA256SUMS (and its digest, when given), restore its checkpoint and
    return its predictor."""
    from trainer.serving import load_model as _load_model

    return _load_model(bundle_dir, expected_digest=expected_digest)
