"""Servers under measurement: start one and time it to its first 200, stop it and every
process it spawned (by PID, nothing else), and read the memory and CPU of its process tree."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from registry.testing import wait_until_answering

# keep a server (MLflow's) from trying to reach anything off this machine
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def start(cmd: list[str], *, cwd: Path, health_url: str, log_path: Path,
          timeout: float = 180.0) -> tuple[subprocess.Popen, float]:
    """Start ``cmd`` in a session of its own; returns it and the seconds to ``health_url``'s
    first 200."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **QUIET_ENV}, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    try:
        return process, wait_until_answering(process, health_url, timeout=timeout,
                                             log=log_path)
    except RuntimeError:
        stop(process)
        raise


def stop(process: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM the process started; SIGKILL it, and any of its descendants still there, after
    ``grace_s``."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    _, alive = psutil.wait_procs(descendants, timeout=10)
    for straggler in alive:  # psutil checks it is still the process seen, not a reused PID
        straggler.kill()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def memory(pid: int) -> dict[str, Any]:
    """RSS and PSS of ``pid`` and its descendants, in MiB."""
    rss = pss = 0
    processes = 0
    for process in _tree(pid):
        try:
            info = process.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss, pss, processes = rss + info.rss, pss + info.pss, processes + 1
    return {"processes": processes, "rss_total_mib": round(rss / 2**20, 1),
            "pss_total_mib": round(pss / 2**20, 1)}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` and its live descendants."""
    total = 0.0
    for process in _tree(pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def settle(pid: int, *, min_s: float, max_s: float) -> float:
    """Wait until the process tree's size and RSS stop changing (workers booted); returns the
    seconds waited."""
    started = time.perf_counter()
    last, stable = None, 0
    while time.perf_counter() - started < max_s:
        now = memory(pid)
        current = (now["processes"], now["rss_total_mib"])
        if last and current[0] == last[0] and abs(current[1] - last[1]) <= 0.01 * last[1]:
            stable += 1
        else:
            stable = 0
        last = current
        if stable >= 3 and time.perf_counter() - started >= min_s:
            break
        time.sleep(1.0)
    return time.perf_counter() - started
