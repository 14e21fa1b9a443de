"""Device calls queued ahead of the host, so the device never waits for the host's logging.

The deadline is checked before each call is queued and at most ``CALLS_IN_FLIGHT`` are queued,
so at most that many run past it. Calls still queued when training stops (early stopping ruled
out their epochs) are dropped unread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import jax

from trainer.batch_plan import CallBatches
from trainer.train_state import TrainState

CALLS_IN_FLIGHT = 2  # calls queued on the device while the host reads the oldest one

EpochLosses = tuple[jax.Array, jax.Array]  # each row's (train loss, validation loss)
RunCall = Callable[[TrainState, CallBatches], tuple[TrainState, jax.Array, EpochLosses]]


@dataclass
class QueuedCall:
    """One queued device call; its arrays may still be computing."""

    batches: CallBatches
    state: TrainState  # after the call
    status: jax.Array  # [rows that ran, epochs since the best one]
    losses: EpochLosses


class CallQueue:
    """Queues ``run(state, batches)`` for each of ``calls`` in turn, each call starting from
    the state the one before it returns, until the calls or the time run out."""

    def __init__(self, run: RunCall, calls: Iterator[CallBatches], state: TrainState, *,
                 deadline: float) -> None:
        self._run, self._calls, self._deadline = run, calls, deadline
        self._tip = state
        self._queued: deque[QueuedCall] = deque()
        self.out_of_time = False
        self._fill()

    def _fill(self) -> None:
        while not self.out_of_time and len(self._queued) < CALLS_IN_FLIGHT:
            batches = next(self._calls, None)
            if batches is None:
                return
            if time.monotonic() >= self._deadline:
                self.out_of_time = True
                return
            self._tip, status, losses = self._run(self._tip, batches)
            self._queued.append(QueuedCall(batches, self._tip, status, losses))

    def pop(self) -> QueuedCall | None:
        """The oldest call, waited for (the next ones queued meanwhile); None when none is left."""
        if not self._queued:
            return None
        call = self._queued.popleft()
        jax.block_until_ready(call.status)
        self._fill()
        return call
