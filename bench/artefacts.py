"""Registering and loading a bundle on the local disk and in an S3 bucket, in one run.

One bundle of the default ``sample.yaml`` model (``--quick``: ``examples/tiny.yaml``) is trained
once by the real trainer (two epochs: the bundle's files are those of a full run). Then, for a
local artefacts root and for a bucket on moto's S3 server on loopback (real HTTP, real client,
in this process):

- **register**: commit a fresh copy of the bundle (a rename on disk; in the bucket one archive
  of its files, each checked as it is packed, uploaded in one request) and register it, which
  verifies every file;
- **cold load**: a consumer's ``load_champion`` against a real ``registry serve``: from the
  shared directory, or, with no shared disk, downloading the bundle over the API (one tar) into
  an empty cache; verified and restored either way (the process's restored-model cache is
  dropped first). The first cold load is reported apart: the server then fetches the bundle
  from the bucket too; later ones it sends from its own verified copy;
- **cached load**: the same consumer again with the bundle already in its cache.

Each step runs on both stores in turn, repeat after repeat (the order alternating), so that
whatever drifts during a run weighs on both alike. It reports medians, the ratio bucket /
local, the bytes each load transferred and the requests the S3 server answered for each step.
It also times one request alone (an empty object put in the bucket), the least any write to
the bucket can cost, against the local register.

Everything it writes (bundles, databases, caches) goes in a temporary directory under
``--workdir``, by default the checkout's ``var/bench``, beside Podium's default artefacts root:
a cold load from the bucket creates every file of the bundle in the consumer's cache (a load
from the shared directory creates none), so that figure depends on how fast the disk creates
files.

    .venv/bin/python bench/artefacts.py [--repeats 5] [--quick] [--workdir DIR]
        [--endpoint URL --bucket NAME]   # an S3-compatible server of your own instead of moto
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from registry import bundle_archive, migrations, promotion, store  # noqa: E402
from registry.client import load_champion  # noqa: E402
from registry.config import load_config  # noqa: E402
from registry.config.storage import ObjectStoreConfig  # noqa: E402
from registry.db import make_engine, write_session  # noqa: E402
from registry.ids import build_version_id  # noqa: E402
from registry.integrity import archive_key, bundle_key, commit_bundle  # noqa: E402
from registry.storage import (  # noqa: E402
    ArtefactStore,
    LocalStore,
    ObjectStore,
    StorageUnavailable,
    store_environment,
    store_options,
)
from registry.testing import LoopbackS3, RegistryServer  # noqa: E402
from trainer import load_model, serving  # noqa: E402
from trainer.config import ResolvedConfig, RunSettings, WandbSettings  # noqa: E402
from trainer.dataset import ensure_dataset, open_feed  # noqa: E402
from trainer.train import train_and_evaluate  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TRACK = "bench"
S3_KEYS = {"region": "us-east-1", "access_key_id": "bench", "secret_access_key": "bench-secret"}


def train_bundle(config_file: Path, work: Path) -> tuple[Path, str, object]:
    """One sealed bundle of the configuration's trainer model; returns (bundle, label, cutoff)."""
    config = load_config(config_file, environ={})
    datasets = work / "datasets"
    ensure_dataset(datasets, config.market)
    cutoff = open_feed(datasets, config.market).landed_days()[-1]
    train = config.trainer.model_copy(update={"epochs": 2, "train_cutoff": cutoff})
    bundle = work / "trained"
    train_and_evaluate(ResolvedConfig(train=train, run=RunSettings(
        datasets_root=str(datasets), wandb=WandbSettings(mode="disabled"))), bundle)
    return bundle, train.label, cutoff


def register_once(artefacts: ArtefactStore, engine, trained: Path, work: Path, *, label: str,
                  cutoff, k: int) -> tuple[str, float]:
    fp = hashlib.sha256(f"{label}-{k}".encode()).hexdigest()
    version_id = build_version_id(label, cutoff, fp)
    copy = work / f"copy-{k}"
    shutil.copytree(trained, copy)  # not timed: the trainer's output, ready to commit
    started = time.perf_counter()
    commit_bundle(artefacts, copy, bundle_key(track=TRACK, version_id=version_id))
    with write_session(engine) as session:
        store.register_version(session, track=TRACK, version_id=version_id, fingerprint=fp,
                               artefacts_root=artefacts, actor="bench")
    elapsed = time.perf_counter() - started
    shutil.rmtree(copy, ignore_errors=True)
    return version_id, elapsed


def load_once(url: str, *, artefacts_root: Path | None, cache: Path) -> tuple[float, int]:
    serving._restored.clear()  # a consumer process's first load
    started = time.perf_counter()
    with load_champion(TRACK, url=url, token=None, artefacts_root=artefacts_root,
                       cache_dir=cache, refresh_seconds=3600) as champion:
        elapsed = time.perf_counter() - started
        return elapsed, champion.bytes_downloaded


@dataclass
class Side:
    """One store under test: its registry database, its server, what it measured."""

    name: str
    artefacts: ArtefactStore
    work: Path
    env: dict[str, str]
    db_url: str = ""
    version_id: str = ""
    figures: dict[str, list[float]] = field(default_factory=lambda: {key: [] for key in (
        "register", "first", "cold", "cached", "cold_bytes", "cached_bytes",
        "register_requests", "first_requests", "cold_requests", "cached_requests",
        "unpack")})

    @property
    def shared_root(self) -> Path | None:
        """What the consumer reads directly: the local root; none for the bucket."""
        return self.artefacts.root if isinstance(self.artefacts, LocalStore) else None


class RequestCount:
    """The requests the loopback server answers from now until :meth:`record` (none are
    counted on a server of one's own, ``--endpoint``)."""

    def __init__(self, s3: LoopbackS3 | None) -> None:
        self._s3 = s3
        if s3 is not None:
            s3.take()

    def record(self, into: list[float]) -> None:
        if self._s3 is not None:
            into.append(self._s3.take().total())


def in_turn(sides: list[Side], k: int) -> list[Side]:
    """Both sides, in an order that alternates from one repeat to the next."""
    return sides if k % 2 == 0 else sides[::-1]


def measure(sides: list[Side], trained: Path, *, label: str, cutoff, repeats: int,
            s3: LoopbackS3 | None) -> None:
    """Each step on both stores in turn, repeat after repeat, so that whatever drifts during
    the run (the process's heap, the machine's other load) weighs on both alike."""
    engines = {}
    for side in sides:
        side.work.mkdir(parents=True)
        side.db_url = f"sqlite:///{side.work / 'podium.db'}"
        engines[side.name] = make_engine(side.db_url)
        migrations.upgrade(engines[side.name])
    for k in range(repeats):
        for side in in_turn(sides, k):
            requests = RequestCount(s3)
            side.version_id, elapsed = register_once(
                side.artefacts, engines[side.name], trained, side.work, label=label,
                cutoff=cutoff, k=k)
            side.figures["register"].append(elapsed)
            requests.record(side.figures["register_requests"])
    servers = []
    for side in sides:
        engine = engines[side.name]
        with write_session(engine) as session:
            promotion.promote_version(session, version_id=side.version_id, actor="bench",
                                      reason="bench", gate=None, force=True,
                                      artefacts_root=side.artefacts)
        engine.dispose()
        server = RegistryServer(database_url=side.db_url, artefacts_root=side.artefacts.url,
                                workdir=side.work, config={"server": {"public_reads": True},
                                                           "shadow": {"in_serve": False}})
        server.env.update(side.env)
        # the server runs this checkout's code, whatever the relative PYTHONPATH it was
        # started with
        server.env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
        servers.append(server)
    archives = {side.name: side.artefacts.get(archive_key(bundle_key(
        track=TRACK, version_id=side.version_id))) for side in sides
        if not isinstance(side.artefacts, LocalStore)}
    with contextlib.ExitStack() as stack:
        urls = {side.name: stack.enter_context(server).url
                for side, server in zip(sides, servers, strict=True)}
        for k in range(repeats):
            for side in in_turn(sides, k):
                cache = side.work / f"cache-{k}"
                requests = RequestCount(s3)
                elapsed, transferred = load_once(urls[side.name], artefacts_root=side.shared_root,
                                                 cache=cache)
                cold = "first" if k == 0 else "cold"
                side.figures[cold].append(elapsed)
                requests.record(side.figures[f"{cold}_requests"])
                side.figures["cold_bytes"].append(transferred)
                if side.name in archives:  # the disk's share: the same files written again
                    started = time.perf_counter()
                    bundle_archive.unpack([archives[side.name]], side.work / f"unpacked-{k}",
                                          name="bench")
                    side.figures["unpack"].append(time.perf_counter() - started)
                requests = RequestCount(s3)
                elapsed, transferred = load_once(urls[side.name], artefacts_root=side.shared_root,
                                                 cache=cache)
                side.figures["cached"].append(elapsed)
                side.figures["cached_bytes"].append(transferred)
                requests.record(side.figures["cached_requests"])


def one_request(bucket: ObjectStore, count: int) -> list[float]:
    """Seconds of single empty-object puts: the floor of any write to the bucket."""
    times = []
    for k in range(count):
        started = time.perf_counter()
        bucket.put(f"floor/{k}", b"")
        times.append(time.perf_counter() - started)
    return times


def remove_run_objects(bucket: ObjectStore) -> None:
    for top in ("models", "floor"):
        bucket.delete_prefix(top)


def open_bucket(args: argparse.Namespace, stack: contextlib.ExitStack
                ) -> tuple[LoopbackS3 | None, ObjectStore, dict[str, str]]:
    """The bucket measured, on moto's server started here or on ``--endpoint``: (the loopback
    server or None, the store, the ``AWS_*`` variables a registry server needs to reach it)."""
    if args.endpoint is None:
        s3 = stack.enter_context(LoopbackS3())
        name, prefix = s3.make_bucket(args.bucket), "artefacts"
        settings = ObjectStoreConfig(endpoint=s3.endpoint, **S3_KEYS)
    else:  # the credentials as the server would take them from its environment
        s3, name, prefix = None, args.bucket, f"podium-bench-{uuid.uuid4().hex[:8]}"
        settings = ObjectStoreConfig(
            endpoint=args.endpoint, region=os.environ.get("AWS_REGION", "us-east-1"),
            access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"))
    bucket = ObjectStore(f"s3://{name}/{prefix}", options=store_options(settings))
    bucket.put("floor/reachable", b"")  # an unusable bucket fails here, before any training
    if s3 is None:  # what the run wrote goes with it
        stack.callback(remove_run_objects, bucket)
    env = store_environment(settings)
    return s3, bucket, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the tiny example market")
    parser.add_argument("--workdir", type=Path, default=REPO / "var" / "bench",
                        help="where the run's temporary directory goes (default: %(default)s)")
    parser.add_argument("--endpoint", metavar="URL",
                        help="an S3-compatible server of your own to measure instead of moto's "
                             "in this process (e.g. http://127.0.0.1:9000): --bucket must exist "
                             "there, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (AWS_REGION) "
                             "are its credentials, and requests are not counted")
    parser.add_argument("--bucket", default="podium-bench",
                        help="the bucket to work in (default: %(default)s); the run writes under "
                             "a prefix of its own and removes it at the end")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats: at least 2 (the first cold load is reported apart)")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    console = Console()
    config_file = REPO / ("examples/tiny.yaml" if args.quick else "sample.yaml")
    args.workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="podium-bench-artefacts-", dir=args.workdir)))
        s3, bucket, env = open_bucket(args, stack)
        console.print(f"bucket: {bucket.url}" + (f" at {args.endpoint}" if args.endpoint else
                                                 " on moto's server in this process"))
        started = time.perf_counter()
        trained, label, cutoff = train_bundle(config_file, work)
        size = sum(p.stat().st_size for p in trained.rglob("*") if p.is_file())
        files = sum(1 for p in trained.rglob("*") if p.is_file())
        console.print(f"trained {config_file.name}'s model in {time.perf_counter() - started:.1f}"
                      f" s: {files} files, {size / 1024:.0f} KiB")
        load_model(trained)  # the first restore in a process imports what later ones reuse:
        serving._restored.clear()  # paid here, not by whichever store is measured first
        sides = [Side("local", LocalStore(work / "local-root"), work / "local", env={}),
                 Side("s3", bucket, work / "s3", env=env)]
        measure(sides, trained, label=label, cutoff=cutoff, repeats=args.repeats, s3=s3)
        local, remote = (side.figures for side in sides)
        floor = statistics.median(one_request(bucket, max(20, args.repeats)))
    table = Table(title=f"bundle register and load, median of {args.repeats} "
                        f"({files} files, {size / 1024:.0f} KiB)")
    for column in ("", "local disk", "S3 (--endpoint)" if args.endpoint else "S3 (loopback)",
                   "S3 / local", "target"):
        table.add_column(column, justify="right" if column else "left")
    for key, what, target in (
            ("register", "register (commit + verify)", "≤ 1.5×"),
            ("first", "first cold load (server fetches too)", ""),
            ("cold", f"consumer cold load (later {args.repeats - 1})", "≤ 1.5×"),
            ("cached", "consumer cached load", "")):
        a, b = statistics.median(local[key]), statistics.median(remote[key])
        table.add_row(what, f"{a * 1000:.1f} ms", f"{b * 1000:.1f} ms", f"{b / a:.2f}×",
                      target)
    cold_gap = statistics.median(remote["cold"]) - statistics.median(local["cold"])
    unpack = statistics.median(remote["unpack"])
    table.add_row(f"  writing its {files} files into a cache (timed apart)", "",
                  f"{unpack * 1000:.1f} ms", f"{unpack / cold_gap:.0%} of the gap"
                  if cold_gap > 0 else "", "")
    register = statistics.median(local["register"])
    table.add_row("one request alone (empty put)", "", f"{floor * 1000:.1f} ms",
                  f"{floor / register:.2f}× register", "")
    for key, what, target in (("cold_bytes", "bytes per cold load", ""),
                              ("cached_bytes", "bytes per cached load", "0"),
                              ("register_requests", "S3 requests per register", ""),
                              ("first_requests", "S3 requests, first cold load", ""),
                              ("cold_requests", "S3 requests per later cold load", ""),
                              ("cached_requests", "S3 requests per cached load", "")):
        counted = bool(local[key])  # requests are counted on the loopback server only
        table.add_row(what, *(f"{statistics.median(side[key]):.0f}" if counted else "–"
                              for side in (local, remote)), "", target)
    console.print(table)
    console.print("local disk: the consumer reads the shared artefacts directory; S3: it has "
                  "only the registry's URL and downloads over the API")


if __name__ == "__main__":
    try:
        main()
    except StorageUnavailable as exc:  # --endpoint unreachable, a wrong key, no such bucket
        raise SystemExit(f"error: {exc}") from None
