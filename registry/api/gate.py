"""The gate for a promotion request, computed on the current leaderboard data.

``registry.leaderboard.gate_outcome`` runs the scorer's gate on the version's settled shadow days
against the champion's. The request's checks come first (unknown version 404, not a challenger
409, stale ``expected_champion`` 409) so a refusal says the real reason. When the caller gives no
``expected_champion``, the promotion is pinned to the champion the gate judged against: if
another promotion lands in between, this one fails with ``champion_changed`` instead of
promoting on a comparison with a champion that is gone.
"""

from __future__ import annotations

import logging

from sqlmodel import Session

from registry import store
from registry.config import PodiumConfig
from registry.errors import ChampionChanged, NotFound, PodiumError, Unavailable
from registry.lifecycle import Action, GateOutcome, State, next_state

log = logging.getLogger("registry.api")


def promotion_gate(session: Session, *, version_id: str, config: PodiumConfig, force: bool,
                   expected_champion: str | None) -> tuple[GateOutcome | None, str | None]:
    """``(gate outcome or None, expected champion to enforce)`` for promoting ``version_id``."""
    version = store.get_version(session, version_id)
    next_state(Action.PROMOTE, State(version.state), version_id=version_id)
    try:
        seen = store.resolve_champion(session, version.track).version_id
    except NotFound:
        seen = store.NO_CHAMPION
    if expected_champion is not None and expected_champion != seen:
        raise ChampionChanged(
            f"expected champion {expected_champion or '(none)'} on track {version.track}, but "
            f"it is {seen or '(none)'}: someone promoted first; re-check and retry",
            current_champion=seen or None)
    gate = _gate(session, version_id=version_id, config=config, force=force)
    if expected_champion is None and not force:
        expected_champion = seen
    return gate, expected_champion


def _gate(session: Session, *, version_id: str, config: PodiumConfig,
          force: bool) -> GateOutcome | None:
    try:
        from registry.leaderboard import gate_outcome
    except ImportError:
        if force:
            return None
        raise Unavailable("the promotion gate is not available on this server",
                          code="gate_unavailable") from None
    if not force:
        return gate_outcome(session, version_id=version_id, config=config)
    try:  # a forced promotion records what the gate said, but never depends on it
        return gate_outcome(session, version_id=version_id, config=config)
    except PodiumError as error:
        log.info("no gate report for the forced promotion of %s: %s", version_id,
                 error.detail)
    except Exception:
        log.exception("the gate failed on the forced promotion of %s; promoting without a "
                      "report", version_id)
    return None
