"""Training throughput of the trainer against a bare jitted loop of the same model (the ceiling).

On the default market and configuration (500 assets, 2,000 landed days, linear, batch 4,096),
measures samples per second of ``trainer.train.fit`` (shuffling, queued calls of many epochs,
validation every epoch, early-stopping bookkeeping, metric logging, deadline checks, the kept
model's rank IC) and of bare loops over the same arrays with the same model and optimiser and
nothing else: one jitted step per batch, one jitted ``lax.scan`` per epoch, and one jitted call
for the whole run (a loop over epochs of scans), on row-major batches or on the feature-major
layout the trainer uses (scoring rows, or columns as the trainer does), unrolled 1 or 4 steps an
iteration. The ceiling is the fastest of them, measured on the long run below. Scoring columns
is several times faster than either row layout, so by default only the column loops run
(``--all-layouts`` runs the rest too, and the one-step-per-batch loop).

The trainer is timed end to end per run (everything ``fit`` does, its fixed set-up included) on
two workloads: the default configuration's epochs, and a long run of the same data (enough
epochs that the run lasts long enough to be representative of a real training job); the
steady-state rate is what each extra epoch costs (the difference of the two). Reports medians
of a few interleaved repeats (each in a shuffled order) and the ratios to the ceiling, measured
in the same process, then the wall time of ``python -m trainer`` on the default configuration.
On a shared machine, the median of each repeat's own ratio (trainer against that repeat's
ceiling) is the steadiest figure, and the long run end to end steadier than each extra epoch
(a difference of two noisy times).

    .venv/bin/python bench/train_throughput.py [--repeats 7] [--long-epochs 3000] [--model mlp]
                                               [--all-layouts]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from trainer.config import ResolvedConfig, TrainConfig  # noqa: E402
from trainer.dataset import open_feed  # noqa: E402
from trainer.models import build_model  # noqa: E402
from trainer.tracking import MetricsLog  # noqa: E402
from trainer.train import fit  # noqa: E402
from trainer.window import build_training_data  # noqa: E402

UNROLLS = (1, 4)  # the ceiling is the fastest bare loop, whatever its unrolling and layout
LAYOUTS = ("row-major", "feature-major", "columns")


class BareLoops:
    """The plainest jitted loops over contiguous batches of the same arrays (no shuffling,
    validation or logging), same model, same AdamW; each returns its seconds for ``epochs``.

    Batches come from ``x [rows, features]`` (row-major) or from a ``[features, rows]`` copy
    made once, untimed, and are scored as rows (feature-major, transposed) or as columns
    (``score_columns``: the layout and the scoring the trainer trains with).
    """

    def __init__(self, config: TrainConfig, x: jax.Array, y: jax.Array) -> None:
        model = build_model(config, x.shape[1])
        graphdef, self.params = nnx.split(model, nnx.Param)
        self.tx = tx = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)
        self.batch = batch = min(config.batch_size, int(y.shape[0]))
        self.steps = int(y.shape[0]) // batch
        self.starts = jnp.arange(self.steps, dtype=jnp.int32) * batch  # contiguous: cheapest
        x_t = jnp.asarray(np.ascontiguousarray(np.asarray(x).T))

        def loss(p, xb, yb, layout: str):
            model = nnx.merge(graphdef, p)
            scores = model.score_columns(xb) if layout == "columns" else model(xb)
            return jnp.mean((scores - yb) ** 2)

        def step(p, opt_state, start, layout: str):
            if layout == "row-major":
                xb = jax.lax.dynamic_slice_in_dim(x, start, batch)
            elif layout == "feature-major":
                xb = jax.lax.dynamic_slice_in_dim(x_t, start, batch, axis=1).T
            else:
                xb = jax.lax.dynamic_slice_in_dim(x_t, start, batch, axis=1)
            yb = jax.lax.dynamic_slice_in_dim(y, start, batch)
            value, grads = jax.value_and_grad(loss)(p, xb, yb, layout)
            updates, opt_state = tx.update(grads, opt_state, p)
            return optax.apply_updates(p, updates), opt_state, value

        def epoch(p, opt_state, starts, layout: str, unroll: int):
            def body(carry, start):
                p, o, value = step(*carry, start, layout)
                return (p, o), value

            (p, opt_state), values = jax.lax.scan(body, (p, opt_state), starts, unroll=unroll)
            return p, opt_state, values

        def run(p, opt_state, epochs, layout: str, unroll: int):
            def body(_, carry):  # the loss sum is kept, as the epoch scan returns its values
                p, o, values = epoch(*carry[:2], self.starts, layout, unroll)
                return p, o, carry[2] + values.sum()

            return jax.lax.fori_loop(0, epochs, body, (p, opt_state, jnp.zeros(())))

        self._step = jax.jit(step, static_argnums=3)
        self._epoch = jax.jit(epoch, static_argnums=(3, 4))
        self._run = jax.jit(run, static_argnums=(3, 4))

    def _timed(self, loop, epochs: int) -> float:
        loop(1)  # compile (and warm)
        started = time.perf_counter()
        jax.block_until_ready(loop(epochs))
        return time.perf_counter() - started

    def step_loop(self, epochs: int, layout: str = "row-major") -> float:
        """One jitted step per batch."""

        def loop(n):
            p, o = self.params, self.tx.init(self.params)
            for _ in range(n):
                for k in range(self.steps):
                    p, o, value = self._step(p, o, self.starts[k], layout)
            return p

        return self._timed(loop, epochs)

    def epoch_scan(self, epochs: int, layout: str = "row-major", unroll: int = 1) -> float:
        """One jitted ``lax.scan`` over the batches per epoch, ``unroll`` steps an iteration."""

        def loop(n):
            p, o = self.params, self.tx.init(self.params)
            for _ in range(n):
                p, o, values = self._epoch(p, o, self.starts, layout, unroll)
            return p

        return self._timed(loop, epochs)

    def run_loop(self, epochs: int, layout: str = "row-major", unroll: int = 1) -> float:
        """One jitted call for the whole run: a loop over epochs of ``lax.scan``s (summing the
        batch losses, which the other loops return, lest XLA drop the loss altogether)."""

        def loop(n):
            return self._run(self.params, self.tx.init(self.params), n, layout, unroll)[0]

        return self._timed(loop, epochs)


def trainer_seconds(config: TrainConfig, data, epochs: int, workdir: Path) -> float:
    """Wall seconds of one ``fit`` of ``epochs`` epochs (early stopping off), end to end."""
    config = config.model_copy(update={"epochs": epochs, "early_stopping_patience": 10_000})
    started = time.perf_counter()
    metrics = MetricsLog(workdir / f"tb-{time.perf_counter_ns()}", stamp=data.train_cutoff)
    fitted = fit(config, data, metrics, deadline=time.monotonic() + 3600)
    metrics.close()  # flushing the TensorBoard events is part of the run
    elapsed = time.perf_counter() - started
    assert fitted.epochs_completed == epochs, "the run stopped early"
    return elapsed


def default_wall_time(datasets_root: Path, workdir: Path) -> dict:
    config = ResolvedConfig.model_validate(
        {"train": {}, "run": {"datasets_root": str(datasets_root)}}
    )
    config_file = workdir / "resolved.json"
    config_file.write_text(config.model_dump_json())
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "--config-file",
            str(config_file),
            "--out",
            str(workdir / "default-bundle"),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(workdir / "wandb")},
    )
    result = json.loads(proc.stdout)
    result["process_wall_seconds"] = time.perf_counter() - started
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--long-epochs", type=int, default=3000)
    parser.add_argument("--model", choices=["linear", "mlp"], default="linear")
    parser.add_argument("--datasets-root", type=Path, default=None)
    parser.add_argument(
        "--all-layouts", action="store_true", help="also the row-major bare loops (slower)"
    )
    args = parser.parse_args()
    layouts = LAYOUTS if args.all_layouts else ("columns",)

    workdir = Path(tempfile.mkdtemp(prefix="podium-bench-"))
    datasets_root = args.datasets_root or workdir / "datasets"
    config = TrainConfig(model=args.model)
    short, long = args.epochs or config.epochs, args.long_epochs
    feed = open_feed(datasets_root, config.market)
    data = build_training_data(feed.returns(), config)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)  # the arrays the trainer gets
    bare = BareLoops(config, x, y)
    samples_per_epoch = bare.steps * bare.batch
    print(
        f"device {jax.devices()[0]}, {args.model}, {data.y_train.shape[0]:,} rows x "
        f"{x.shape[1]} features, batch {bare.batch}, {bare.steps} steps/epoch; trainer runs of "
        f"{short} epochs (the default configuration) and {long} epochs (a long run)"
    )

    trainer_seconds(config, data, 2, workdir)  # compile
    bare_loops = {
        **({"bare step loop, row-major": bare.step_loop} if args.all_layouts else {}),
        **{
            f"bare epoch scan, {layout}, unroll {unroll}": partial(
                bare.epoch_scan, layout=layout, unroll=unroll
            )
            for layout in layouts
            for unroll in UNROLLS
        },
        **{
            f"bare run loop, {layout}, unroll {unroll}": partial(
                bare.run_loop, layout=layout, unroll=unroll
            )
            for layout in layouts
            for unroll in UNROLLS
        },
    }
    timed = {
        **{name: partial(loop, long) for name, loop in bare_loops.items()},
        "short": partial(trainer_seconds, config, data, short, workdir),
        "long": partial(trainer_seconds, config, data, long, workdir),
    }
    runs: dict[str, list[float]] = {name: [] for name in timed}
    shuffle = random.Random(0)
    for _ in range(args.repeats):  # interleaved, so a noisy neighbour hits every figure alike,
        for name in shuffle.sample(list(timed), len(timed)):  # in a fresh order (no order bias)
            runs[name].append(timed[name]())

    def rates(seconds: dict[str, float]) -> tuple[dict[str, float], str, float]:
        """Samples/s of every figure, the ceiling's name, and the trainer's fixed ms a run."""
        per_epoch = (seconds["long"] - seconds["short"]) / (long - short)
        figures = {name: long * samples_per_epoch / seconds[name] for name in bare_loops}
        ceiling = max(figures, key=figures.get)
        for name, epochs in (("short", short), ("long", long)):
            figures[f"trainer, {epochs} epochs, end to end"] = (
                epochs * samples_per_epoch / seconds[name]
            )
        figures["trainer, each extra epoch"] = samples_per_epoch / per_epoch
        return figures, ceiling, 1e3 * (seconds["short"] - short * per_epoch)

    best, best_ceiling, fixed_ms = rates({name: min(values) for name, values in runs.items()})
    median, median_ceiling, _ = rates(
        {name: statistics.median(values) for name, values in runs.items()}
    )
    print(
        f"M samples/s and ratio to the ceiling, from the best (least disturbed) and the median of "
        f"{args.repeats} interleaved repeats; ceiling: {best_ceiling} (best), {median_ceiling} "
        f"(median)"
    )
    print(f"  {'':40s} {'best':>8s} {'ratio':>6s} {'median':>8s} {'ratio':>6s}")
    for name in best:
        print(
            f"  {name:40s} {best[name] / 1e6:8.1f} {best[name] / best[best_ceiling]:6.3f} "
            f"{median[name] / 1e6:8.1f} {median[name] / median[median_ceiling]:6.3f}"
        )
    for figure in (f"trainer, {long} epochs, end to end", "trainer, each extra epoch"):
        paired = sorted(  # each repeat's trainer against that repeat's fastest bare loop
            rates({name: values[k] for name, values in runs.items()})[0][figure]
            / max(long * samples_per_epoch / runs[name][k] for name in bare_loops)
            for k in range(args.repeats)
        )
        print(
            f"{figure} against the ceiling of the same repeat: median "
            f"{statistics.median(paired):.3f} (from {paired[0]:.3f} to {paired[-1]:.3f})"
        )
    print(
        f"trainer runs took {min(runs['short']):.3f} s ({short} epochs) and "
        f"{min(runs['long']):.3f} s ({long} epochs) at best; its fixed cost per run (shuffle, "
        f"copies, init, rank IC) {fixed_ms:.1f} ms; target >= 0.9 of the ceiling"
    )

    result = default_wall_time(datasets_root, workdir)
    print(
        f"default configuration: python -m trainer took {result['process_wall_seconds']:.1f} s "
        f"wall ({result['wall_time_seconds']:.1f} s inside), {result['steps_completed']} steps, "
        f"val_rank_ic {result['val_rank_ic']:.4f}, stopped_early {result['stopped_early']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
