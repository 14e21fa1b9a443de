import pytest

from registry.errors import InvalidTransition
from registry.lifecycle import TRANSITIONS, Action, State, next_state


def test_the_table_is_the_design() -> None:
    assert next_state(Action.REGISTER, None) is State.CHALLENGER
    assert next_state(Action.PROMOTE, State.CHALLENGER) is State.CHAMPION
    assert next_state(Action.DISPLACE, State.CHAMPION) is State.RETIRED
    assert next_state(Action.RETIRE, State.CHALLENGER) is State.RETIRED
    assert next_state(Action.ROLLBACK, State.CHAMPION) is State.RETIRED
    assert next_state(Action.RESTORE, State.RETIRED) is State.CHAMPION
    assert len(TRANSITIONS) == 6
    assert not any(action is Action.PROMOTE_REFUSED for action, _ in TRANSITIONS)


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
