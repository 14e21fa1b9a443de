import pytest

from registry.errors import GateRejected, InvalidInput, InvalidTransition
from registry.lifecycle import (
    TRANSITIONS,
    Action,
    GateOutcome,
    State,
    check_promotion_allowed,
    next_state,
)


def test_the_table_is_the_design() -> None:
    assert next_state(Action.REGISTER, None) is State.CHALLENGER
    assert next_state(Action.PROMOTE, State.CHALLENGER) is State.CHAMPION
    assert next_state(Action.DISPLACE, State.CHAMPION) is State.RETIRED
    assert next_state(Action.RETIRE, State.CHALLENGER) is State.RETIRED
    assert next_state(Action.ROLLBACK, State.CHAMPION) is State.RETIRED
    assert next_state(Action.RESTORE, State.RETIRED) is State.CHAMPION
    assert len(TRANSITIONS) == 6


@pytest.mark.parametrize(("action", "state", "why"), [
    (Action.RETIRE, State.CHAMPION, "a champion is never retired directly"),
    (Action.PROMOTE, State.CHAMPION, "already the champion"),
    (Action.PROMOTE, State.RETIRED, "only a challenger can be promoted"),
    (Action.RETIRE, State.RETIRED, "already retired"),
    (Action.ROLLBACK, State.CHALLENGER, "not allowed from challenger"),
])
def test_illegal_transitions_say_why(action: Action, state: State, why: str) -> None:
    with pytest.raises(InvalidTransition, match=why) as info:
        next_state(action, state, version_id="v1-20250101-00000000")
    assert info.value.code == "invalid_transition"


def test_gate_must_pass_unless_forced_with_a_reason() -> None:
    failing = GateOutcome(passed=False, verdict="FAIL", reasons=("net Sharpe not better",))
    with pytest.raises(GateRejected, match="FAIL.*net Sharpe not better") as info:
        check_promotion_allowed(failing, force=False, reason="x", version_id="v")
    assert info.value.extra["gate"]["verdict"] == "FAIL"
    with pytest.raises(GateRejected, match="no gate decision"):
        check_promotion_allowed(None, force=False, reason="x", version_id="v")
    with pytest.raises(InvalidInput, match="forced promotion needs a reason"):
        check_promotion_allowed(failing, force=True, reason="  ", version_id="v")
    check_promotion_allowed(failing, force=True, reason="incident 42", version_id="v")
    check_promotion_allowed(GateOutcome(True, "PASS"), force=False, reason="", version_id="v")
