"""Which rows each training step reads, and how the steps are cut into device calls.

The rows are shuffled once (seeded); each epoch then visits contiguous batches of the shuffled
rows in a fresh random order, shifted by a random phase, so an epoch costs no device-side
permutation or gather. A device call runs many epochs (a loop over epochs of scans over
batches), or, when one epoch is longer than a call may be, one piece of an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

MAX_STEPS_PER_CALL = 4096  # the soft deadline is checked at least this often


@dataclass
class CallBatches:
    """The batches of one device call: ``rows`` rows of ``starts [R, S]`` (the rest is
    padding, so every call of a run has one shape), each row ``S`` batch starts; a row is a
    whole epoch when ``ends_epoch``, else one piece of an epoch (its last piece validated)."""

    starts: np.ndarray
    rows: int
    ends_epoch: bool


class BatchPlan:
    """The shuffled order of the rows and each epoch's batch starts, cheap enough to redraw
    every epoch."""

    def __init__(self, n_rows: int, batch_size: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(n_rows)
        self.batch_size = min(batch_size, n_rows)
        self.steps = n_rows // self.batch_size
        self.slack = n_rows - self.steps * self.batch_size

    def epoch_starts(self) -> np.ndarray:
        phase = int(self.rng.integers(0, self.slack + 1))
        return (phase + self.rng.permutation(self.steps) * self.batch_size).astype(np.int32)

    def calls(self, epochs: int) -> Iterator[CallBatches]:
        """The device calls of ``epochs`` epochs, in order, each of at most
        ``MAX_STEPS_PER_CALL`` steps: runs of whole epochs, or, when an epoch is longer than
        that, its pieces."""
        if self.steps <= MAX_STEPS_PER_CALL:
            per_call = MAX_STEPS_PER_CALL // self.steps  # whatever the epochs: one shape
            for first in range(0, epochs, per_call):
                rows = min(per_call, epochs - first)
                starts = np.zeros((per_call, self.steps), dtype=np.int32)  # padded: one shape
                for row in range(rows):
                    starts[row] = self.epoch_starts()
                yield CallBatches(starts, rows, ends_epoch=True)
            return
        pieces = -(-self.steps // MAX_STEPS_PER_CALL)
        edges = np.linspace(0, self.steps, pieces + 1).round().astype(int)
        for _ in range(epochs):
            starts = self.epoch_starts()
            for first, last in zip(edges[:-1], edges[1:], strict=True):
                yield CallBatches(starts[None, first:last], 1,
                                  ends_epoch=bool(last == self.steps))
