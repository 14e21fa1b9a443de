"""Training throughput of the trainer against a bare jitted loop of the same model (the ceiling).

On the default market and configuration (500 assets, 2,000 landed days, linear, batch 4,096),
measures samples per second of ``trainer.train.fit`` (shuffling, chunked scans, per-epoch
evaluation, TensorBoard logging, deadline checks) and of two bare loops over the same arrays with
the same model and optimiser and nothing else: one jitted step per batch, and one ``lax.scan``
over a whole epoch. Reports the median of a few repeats, the ratio to the faster bare loop, and
the wall time of ``python -m trainer`` on the default configuration on this machine.

    .venv/bin/python bench/train_throughput.py [--repeats 3] [--epochs 10] [--model linear]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from trainer.config import ResolvedConfig, TrainConfig  # noqa: E402
from trainer.dataset import open_feed  # noqa: E402
from trainer.models import build_model  # noqa: E402
from trainer.tracking import MetricsLog  # noqa: E402
from trainer.train import fit  # noqa: E402
from trainer.window import build_training_data  # noqa: E402


def bare_loops(config: TrainConfig, x, y, epochs: int) -> dict[str, float]:
    """Samples/s of the plainest jitted loops (per-step calls; one scan per epoch) over
    contiguous batches of the same arrays: no shuffling, evaluation or logging."""
    model = build_model(config, x.shape[1])
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)

    def loss(p, xb, yb):
        return jnp.mean((nnx.merge(graphdef, p)(xb) - yb) ** 2)

    def step(p, opt_state, start):
        xb = jax.lax.dynamic_slice_in_dim(x, start, batch)
        yb = jax.lax.dynamic_slice_in_dim(y, start, batch)
        value, grads = jax.value_and_grad(loss)(p, xb, yb)
        updates, opt_state = tx.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, value

    step_jit = jax.jit(step)

    @jax.jit
    def epoch_scan(p, opt_state, batches):
        def body(carry, index):
            p, o, value = step(*carry, index)
            return (p, o), value

        (p, opt_state), values = jax.lax.scan(body, (p, opt_state), batches)
        return p, opt_state, values

    n = int(y.shape[0])
    batch = min(config.batch_size, n)
    steps = n // batch
    batches = jnp.arange(steps, dtype=jnp.int32) * batch  # contiguous batches: the cheapest
    figures = {}

    p, o = params, tx.init(params)
    p, o, value = step_jit(p, o, batches[0])  # compile
    value.block_until_ready()
    started = time.perf_counter()
    for _ in range(epochs):
        for k in range(steps):
            p, o, value = step_jit(p, o, batches[k])
    value.block_until_ready()
    figures["bare_step_loop"] = epochs * steps * batch / (time.perf_counter() - started)

    p, o = params, tx.init(params)
    p, o, values = epoch_scan(p, o, batches)  # compile
    values.block_until_ready()
    started = time.perf_counter()
    for _ in range(epochs):
        p, o, values = epoch_scan(p, o, batches)
    values.block_until_ready()
    figures["bare_scan"] = epochs * steps * batch / (time.perf_counter() - started)
    return figures


def trainer_fit(config: TrainConfig, data, epochs: int, workdir: Path) -> float:
    config = config.model_copy(update={"epochs": epochs, "early_stopping_patience": 10_000})
    metrics = MetricsLog(workdir / f"tb-{time.perf_counter_ns()}")
    started = time.perf_counter()
    fitted = fit(config, data, metrics, deadline=time.monotonic() + 3600)
    elapsed = time.perf_counter() - started
    metrics.close()
    batch = min(config.batch_size, data.y_train.shape[0])
    return fitted.steps_completed * batch / elapsed


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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--model", choices=["linear", "mlp"], default="linear")
    parser.add_argument("--datasets-root", type=Path, default=None)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="podium-bench-"))
    datasets_root = args.datasets_root or workdir / "datasets"
    config = TrainConfig(model=args.model)
    feed = open_feed(datasets_root, config.market)
    data = build_training_data(feed.returns(), config)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)  # same arrays as the trainer
    print(
        f"device {jax.devices()[0]}, {args.model}, {data.y_train.shape[0]} rows x "
        f"{x.shape[1]} features, batch {config.batch_size}, {args.epochs} epochs/run"
    )

    trainer_fit(config, data, 1, workdir)  # compile
    runs = {"trainer": [], "trainer_marginal": [], "bare_step_loop": [], "bare_scan": []}
    samples_per_epoch = (data.y_train.shape[0] // config.batch_size) * config.batch_size
    for _ in range(args.repeats):
        short = trainer_fit(config, data, args.epochs, workdir)
        long = trainer_fit(config, data, 3 * args.epochs, workdir)
        runs["trainer"].append(short)
        # the steady-state rate: what each extra epoch costs, fixed set-up costs excluded
        extra = 3 * args.epochs * samples_per_epoch / long - args.epochs * samples_per_epoch / short
        runs["trainer_marginal"].append(2 * args.epochs * samples_per_epoch / extra)
        for name, value in bare_loops(config, x, y, args.epochs).items():
            runs[name].append(value)
    median = {name: statistics.median(values) for name, values in runs.items()}
    ceiling = max(median["bare_step_loop"], median["bare_scan"])
    for name, value in median.items():
        print(
            f"{name:16s} {value:12,.0f} samples/s  (runs: "
            + ", ".join(f"{v:,.0f}" for v in runs[name])
            + ")"
        )
    print(
        f"ratio trainer / ceiling: {median['trainer'] / ceiling:.3f} end to end, "
        f"{median['trainer_marginal'] / ceiling:.3f} per extra epoch (target >= 0.9); "
        f"trainer / bare per-step loop: {median['trainer'] / median['bare_step_loop']:.2f}"
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
