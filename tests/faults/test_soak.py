"""bench/soak.py in a short run on each database: no errors, no stale reads (no timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import soak
from tests.conftest import REPO


@pytest.mark.slow
def test_a_short_soak_has_no_errors_and_no_stale_reads(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    database = [] if db_url.startswith("sqlite") else ["--database-url", db_url]
    result = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), "--seconds", "8",
                             "--interval", "1", "--consumers", "3", "--json", str(out),
                             *database], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["database"] == db_url.split(":")[0].split("+")[0]
    assert figures["errors"] == 0 and figures["stale_reads"] == 0, figures
    assert figures["final_champion_agrees"] and figures["server_log_errors"] == 0
    assert figures["promotions"] >= 2 and figures["rollbacks"] >= 1
    assert figures["requests"] > 0
    assert "PASS" in result.stdout and "stale reads" in result.stdout


def test_the_stale_read_check_catches_an_old_champion() -> None:
    """The check itself, on a hand-made timeline: a promotion of B answered at t=2, then of C
    sent at t=5 and answered at t=6."""
    run = soak.Soak(database="sqlite", seconds=10, consumers=1, first_champion="A")
    run.transitions = [soak.Transition("promote", 1.0, 2.0, "B"),
                       soak.Transition("promote", 5.0, 6.0, "C")]
    run.reads = [
        soak.Read(1.5, 1.8, 200, "A"),  # started before B's answer: A is fine
        soak.Read(1.5, 1.8, 200, "B"),  # ... and so is B (B was in flight)
        soak.Read(2.5, 2.6, 200, "A"),  # after B's answer: stale
        soak.Read(4.8, 5.2, 200, "C"),  # C was sent before it ended: fine
        soak.Read(4.8, 4.9, 200, "C"),  # C was not sent yet: a champion from the future
        soak.Read(6.5, 6.6, 200, "B"),  # after C's answer: stale
        soak.Read(7.0, 7.1, 503, None),  # an error, not a stale read
    ]
    assert [(r.start, r.champion) for r in soak.stale_reads(run)] == [
        (2.5, "A"), (4.8, "C"), (6.5, "B")]
