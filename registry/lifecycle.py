"""The lifecycle as data: which action may move a version from which state to which.

Pure: no database here. ``registry.store`` applies a transition inside one transaction.
A promotion moves the challenger to champion and *displaces* the old champion to retired; a
rollback retires the current champion and *restores* the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from registry.errors import GateRejected, InvalidInput, InvalidTransition


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


@dataclass(frozen=True)
class GateOutcome:
    """What the gate decided about one challenger (the scorer computes it; the store records it)."""

    passed: bool
    verdict: str
    reasons: tuple[str, ...] = ()
    report: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {"passed": self.passed, "verdict": self.verdict, "reasons": list(self.reasons),
                **self.report}


def check_promotion_allowed(gate: GateOutcome | None, *, force: bool, reason: str,
                            version_id: str) -> None:
    """Refuse unless the gate passed, or the promotion is forced with a reason."""
    if force:
        if not reason.strip():
            raise InvalidInput("a forced promotion needs a reason", code="reason_required")
        return
    if gate is None:
        raise GateRejected(f"no gate decision for {version_id}: score it in shadow first, "
                           "or force the promotion with a reason")
    if not gate.passed:
        because = "; ".join(gate.reasons) or gate.verdict
        raise GateRejected(f"the gate refuses {version_id} ({gate.verdict}): {because}",
                           gate=gate.as_record())
