"""The zoo's specs one after another here, against the same specs as Ray tasks on a local cluster.

Trains every active spec of the configuration (``sample.yaml``'s six by default) twice, each
time from an empty registry and artefacts root whose dataset is already made: sequentially,
as ``zoo --all-active`` does, then on a local Ray cluster of ``--workers`` nodes of one CPU
each (started with ``ray start``, as an operator would), as ``zoo --all-active --executor ray``
does. Reports both wall times, their ratio, and that both registered the same version ids.

Then the per-task overhead Ray adds over a bare subprocess: ``--overhead-runs`` runs of a
trainer that prints its result line and exits at once, through the local executor's
``run_trainer`` and through one Ray task each (submitted one at a time, so the figure is the
latency of one task: scheduling, shipping the spec, a warm worker, the result back), medians.

    PYTHONPATH=. .venv/bin/python bench/zoo_parallel.py [--config sample.yaml] [--workers 2]
                                                      [--overhead-runs 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ray
from rich.console import Console
from rich.table import Table

from registry import migrations
from registry.config import load_config
from registry.db import make_engine
from tests.zoo.ray_cluster import LocalCluster
from zoo.ray_executor import connect, run_specs_on_ray, train_on_worker
from zoo.runner import resolve_for_data, run_spec, run_trainer
from zoo.specs import active_specs

REPO = Path(__file__).resolve().parent.parent
console = Console()
INSTANT_TRAINER = [sys.executable, "-c", "import json; print(json.dumps({'status': 'ok'}))"]


def fresh(config_path: Path, root: Path):
    """The configuration on an empty registry and artefacts root, its dataset already made."""
    config = load_config(config_path, environ={
        "PODIUM_DATABASE_URL": f"sqlite:///{root / 'podium.db'}",
        "PODIUM_ARTEFACTS_ROOT": str(root / "artefacts")})
    engine = make_engine(config.database.url)
    migrations.upgrade(engine)
    for spec in active_specs(config):
        resolve_for_data(config, spec)
    return config, engine


def overhead(config, address: str, runs: int) -> dict[str, float]:
    """Median seconds of an instant trainer run bare and as one Ray task."""
    spec = active_specs(config)[0]
    resolved = resolve_for_data(config, spec)
    runs_root = config.artefacts_root.resolve() / "overhead"
    bare, on_ray = [], []
    connect(ray, address)
    task = ray.remote(train_on_worker).options(num_cpus=1, max_retries=0)
    try:
        ray.get(task.remote(config, resolved, _run_dir(runs_root, "warm"), INSTANT_TRAINER))
        for i in range(runs):
            run_dir = _run_dir(runs_root, f"bare-{i}")
            started = time.perf_counter()
            run_trainer(config, resolved, run_dir=run_dir, out=run_dir / "bundle",
                        trainer_command=INSTANT_TRAINER)
            bare.append(time.perf_counter() - started)
            run_dir = _run_dir(runs_root, f"ray-{i}")
            started = time.perf_counter()
            result = ray.get(task.remote(config, resolved, run_dir, INSTANT_TRAINER))
            on_ray.append(time.perf_counter() - started)
            assert result.status == "ok", result.message
    finally:
        ray.shutdown()
    return {"bare_subprocess_s": statistics.median(bare),
            "ray_task_s": statistics.median(on_ray),
            "overhead_s": statistics.median(on_ray) - statistics.median(bare)}


def _run_dir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "sample.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--overhead-runs", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")

    with tempfile.TemporaryDirectory(prefix="zoo-parallel-") as tmp:
        config, engine = fresh(args.config, Path(tmp) / "sequential")
        specs = active_specs(config)
        started = time.perf_counter()
        sequential = [run_spec(config, spec, engine=engine) for spec in specs]
        sequential_s = time.perf_counter() - started
        engine.dispose()

        config, engine = fresh(args.config, Path(tmp) / "ray")
        started = time.perf_counter()
        cluster = LocalCluster(nodes=args.workers, cpus_per_node=1,
                               env={"PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"})
        cluster_start_s = time.perf_counter() - started
        try:
            started = time.perf_counter()
            parallel = run_specs_on_ray(config, specs, engine=engine, address=cluster.address)
            parallel_s = time.perf_counter() - started
            task_overhead = overhead(config, cluster.address, args.overhead_runs)
        finally:
            cluster.stop()
            engine.dispose()

    failed = [r for r in sequential + parallel if r.status != "registered"]
    report = {
        "specs": len(specs), "workers": args.workers, "cpus": os.cpu_count(),
        "sequential_s": round(sequential_s, 1), "ray_s": round(parallel_s, 1),
        "speed_up": round(sequential_s / parallel_s, 2),
        "cluster_start_s": round(cluster_start_s, 1),
        "same_version_ids": [r.version_id for r in sequential] == [r.version_id for r in parallel],
        "per_spec_s": {r.spec: [round(s.duration_seconds, 1), round(r.duration_seconds, 1)]
                       for s, r in zip(sequential, parallel, strict=True)},
        **{key: round(value, 3) for key, value in task_overhead.items()},
        "failed": [f"{r.spec}: {r.status} {r.message}" for r in failed],
    }
    table = Table(title=f"{len(specs)} specs: one after another, then on {args.workers} Ray "
                        f"nodes of 1 CPU ({os.cpu_count()} cores here)")
    for name in ("spec", "sequential s", "on Ray s (queued + trained)"):
        table.add_column(name, justify="left" if name == "spec" else "right")
    for spec, (alone, on_ray) in report["per_spec_s"].items():
        table.add_row(spec, f"{alone:.1f}", f"{on_ray:.1f}")
    table.add_row("all (wall)", f"{sequential_s:.1f}", f"{parallel_s:.1f}")
    console.print(table)
    verdict = "met" if report["speed_up"] >= 1.5 else "NOT met"
    console.print(f"speed-up {report['speed_up']:.2f}x (target >= 1.5: {verdict}); same version "
                  f"ids: {report['same_version_ids']}; cluster start (not counted): "
                  f"{cluster_start_s:.1f} s")
    verdict = "met" if task_overhead["overhead_s"] <= 1.0 else "NOT met"
    console.print(f"an instant trainer, median of {args.overhead_runs}: bare subprocess "
                  f"{task_overhead['bare_subprocess_s']:.3f} s, as one Ray task "
                  f"{task_overhead['ray_task_s']:.3f} s: Ray adds "
                  f"{task_overhead['overhead_s']:.3f} s a task (target <= 1 s: {verdict})")
    for line in report["failed"]:
        console.print(f"[red]{line}[/]")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
