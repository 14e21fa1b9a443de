"""A load generator for one HTTP endpoint: raw HTTP/1.1 on keep-alive connections from one
asyncio loop, the lightest client Python allows, so that the server, not the client, is what is
measured. Answers are checked (a 200 whose body holds an expected value) and timed."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import numpy as np
from server_processes import cpu_seconds


class Connection:
    """One keep-alive HTTP/1.1 connection: a request is written in one go, the answer read by
    its Content-Length (or chunks)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = None, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            body = b""
            while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")
        else:
            body = await self.reader.readexactly(length or 0)
        return status, body


def request_bytes(method: str, path: str, port: int, token: str | None,
                  body: dict | None = None, *, accept_gzip: bool = False) -> bytes:
    """A raw request; with ``accept_gzip`` it accepts a gzipped answer (read, not unpacked)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: application/json"]
    if accept_gzip:
        lines.append("Accept-Encoding: gzip")
    if token:
        lines.append(f"Authorization: Bearer {token}")
    payload = b""
    if body is not None:
        payload = json.dumps(body).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile (NumPy's ``inverted_cdf``); None when there are no values."""
    return float(np.percentile(values, p, method="inverted_cdf")) if len(values) else None


async def load(port: int, raw: bytes, expect: bytes, *, clients: int, seconds: float,
               warmup: float, server_pid: int) -> dict[str, Any]:
    """``clients`` connections each send ``raw`` back to back for ``seconds`` (after
    ``warmup``); an answer counts when it is a 200 whose body contains ``expect``. Also the CPU
    time of the client and of the server's process tree over the measured window."""
    connections = [Connection(port) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in connections))
    latencies: list[float] = []
    errors: list[str] = []

    async def drive(connection: Connection, until: float, keep: bool) -> None:
        while (started := time.perf_counter()) < until:
            try:
                status, body = await connection.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors.append(type(exc).__name__)
                await connection.close()
                continue
            elapsed = time.perf_counter() - started
            if not keep:
                continue
            if status == 200 and expect in body:
                latencies.append(elapsed)
            else:
                errors.append(f"HTTP {status}: {body[:120]!r}")

    try:
        await asyncio.gather(*(drive(c, time.perf_counter() + warmup, False)
                               for c in connections))
        cpu, server_cpu, started = (time.process_time(), cpu_seconds(server_pid),
                                    time.perf_counter())
        await asyncio.gather(*(drive(c, started + seconds, True) for c in connections))
        wall = time.perf_counter() - started
        cpu, server_cpu = time.process_time() - cpu, cpu_seconds(server_pid) - server_cpu
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return {"latencies": latencies, "errors": errors, "wall_s": wall, "client_cpu_s": cpu,
            "server_cpu_s": server_cpu}


def summarize(clients: int, slices: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure per client count from the slices of every round."""
    ms = sorted(x * 1000 for part in slices for x in part["latencies"])
    errors = [e for part in slices for e in part["errors"]]
    wall = sum(part["wall_s"] for part in slices)
    return {"clients": clients, "ok": len(ms), "errors": len(errors),
            "error_samples": sorted(set(errors))[:3], "wall_s": round(wall, 3),
            "rps": len(ms) / wall, "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "client_cpu": sum(part["client_cpu_s"] for part in slices) / wall,
            "server_cpu_ms_per_request": 1000 * sum(part["server_cpu_s"] for part in slices)
            / max(len(ms), 1)}
