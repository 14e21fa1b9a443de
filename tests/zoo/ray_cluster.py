"""A real local Ray cluster, started with Ray's own tooling: a head and worker nodes on this
machine, each with its own CPUs, in a temporary directory, stopped (and its processes killed by
id) when done. The tests and ``bench/zoo_parallel.py`` train on it.

Every node listens on loopback only. Ray swaps 127.0.0.1 (and ``localhost``) for the machine's
routable address (``ray._private.services.resolve_ip_for_localhost``), so the nodes take
127.0.0.2, which is loopback too and which Ray leaves as given."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"
ADDRESS = re.compile(r"--address='([^']+)'")
OBJECT_STORE_BYTES = 80 * 2**20
LOOPBACK = "127.0.0.2"


class LocalCluster:
    """``ray start --head`` plus ``ray start --address`` for each further node."""

    def __init__(self, *, nodes: int = 2, cpus_per_node: int = 1,
                 env: dict[str, str] | None = None) -> None:
        # Ray's socket paths must stay short: a directory directly under /tmp.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        self.env = {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0"}
        self.groups: list[int] = []
        self.address = ""
        try:
            head = self._start("--head", "--port=0", "--include-dashboard=false",
                               f"--node-ip-address={LOOPBACK}",
                               f"--temp-dir={self.temp_dir}", f"--num-cpus={cpus_per_node}")
            match = ADDRESS.search(head)
            if match is None:
                raise RuntimeError(f"ray start --head printed no address:\n{head}")
            self.address = match.group(1)
            for _ in range(nodes - 1):
                self._start(f"--address={self.address}", f"--node-ip-address={LOOPBACK}",
                            f"--num-cpus={cpus_per_node}")
        except BaseException:
            self.stop()
            raise

    def _start(self, *args: str) -> str:
        starter = subprocess.Popen(
            [str(RAY), "start", *args, f"--object-store-memory={OBJECT_STORE_BYTES}",
             "--disable-usage-stats"], env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        # Its daemons stay in the process group `ray start` led, even after it exits.
        self.groups.append(starter.pid)
        output, _ = starter.communicate(timeout=180)
        if starter.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{output[-3000:]}")
        return output

    def processes(self) -> list[int]:
        """Every live process of this cluster: its daemons and its workers."""
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
                group = os.getpgid(int(proc.name))
            except (OSError, ProcessLookupError):
                continue
            if group in self.groups or str(self.temp_dir).encode() in cmdline:
                found.append(int(proc.name))
        return found

    def stop(self) -> None:
        # The GCS server and the autoscaler's monitor outlast SIGTERM by 10 s and more; nothing
        # of a throwaway cluster needs a graceful end, so they get a short grace, then SIGKILL.
        for sig, grace in ((signal.SIGTERM, 2), (signal.SIGKILL, 10)):
            for pid in self.processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.1)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

