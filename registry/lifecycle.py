"""The lifecycle as data: which action may move a version from which state to which.

Pure: no database here. ``registry.store`` applies a transition inside one transaction.
A promotion moves the challenger to champion and *displaces* the old champion to retired; a
rollback retires the current champion and *restores* the previous one. A promotion the gate
refuses moves nothing, but is audited too (``PROMOTE_REFUSED``).
"""

from __future__ import annotations

from enum import StrEnum

from registry.errors import InvalidTransition


class State(StrEnum):
    CHALLENGER = "challenger"
    CHAMPION = "champion"
    RETIRED = "retired"


class Action(StrEnum):
    REGISTER = "register"
    PROMOTE = "promote"
    DISPLACE = "displace"  # the old champion's side of a promotion
    RETIRE = "retire"
    ROLLBACK = "rollback"  # the current champion's side of a rollback
    RESTORE = "restore"  # the previous champion's side of a rollback
    PROMOTE_REFUSED = "promote_refused"  # audited, but no transition: the gate said no


TRANSITIONS: dict[tuple[Action, State | None], State] = {
    (Action.REGISTER, None): State.CHALLENGER,
    (Action.PROMOTE, State.CHALLENGER): State.CHAMPION,
    (Action.DISPLACE, State.CHAMPION): State.RETIRED,
    (Action.RETIRE, State.CHALLENGER): State.RETIRED,
    (Action.ROLLBACK, State.CHAMPION): State.RETIRED,
    (Action.RESTORE, State.RETIRED): State.CHAMPION,
}

_WHY_NOT = {
    (Action.RETIRE, State.CHAMPION): "a champion is never retired directly: promote a "
    "challenger in its place or roll the track back",
    (Action.PROMOTE, State.CHAMPION): "it is already the champion",
    (Action.PROMOTE, State.RETIRED): "it is retired; only a challenger can be promoted "
    "(a retired champion comes back only through a rollback)",
    (Action.RETIRE, State.RETIRED): "it is already retired",
}


def next_state(action: Action, current: State | None, *, version_id: str = "version") -> State:
    """The state ``action`` leads to from ``current``, or ``InvalidTransition`` saying why not."""
    target = TRANSITIONS.get((action, current))
    if target is None:
        why = _WHY_NOT.get((action, current), f"{action.value} is not allowed from "
                           f"{current.value if current else 'nothing'}")
        raise InvalidTransition(f"cannot {action.value} {version_id}: {why}",
                                state=current.value if current else None)
    return target
