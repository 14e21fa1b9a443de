"""The live progress bars the CLIs show while a spec trains or shadow days are scored.

Each is a context manager that yields the callback the worker reports to (``zoo.runner.run_spec``
and ``shadow.runner.run_shadow`` take it as ``progress``). On a terminal the bar is live and
vanishes when done; in a log or a pipe it draws nothing, and the caller prints its own summary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from registry.console import console

TrainingReport = Callable[[str, float, str], None]  # (spec name, seconds elapsed, last log line)
ScoringReport = Callable[[str, int, int], None]  # (version id, versions done, versions in all)


@contextmanager
def training_bar(spec_name: str, *, budget_seconds: float) -> Iterator[TrainingReport]:
    """Seconds elapsed against the spec's time budget, and the trainer's last log line."""
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[log]}", style="dim"), console=console,
                  transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"training {spec_name}", total=budget_seconds, log="")

        def report(_spec_name: str, elapsed: float, last_line: str) -> None:
            bar.update(task, completed=min(elapsed, budget_seconds), log=last_line[-60:])

        yield report


@contextmanager
def scoring_bar(title: str) -> Iterator[ScoringReport]:
    """Versions scored out of those pending, and the one being scored."""
    with Progress(TextColumn(title), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("", total=None)

        def report(version_id: str, done: int, total: int) -> None:
            bar.update(task, total=total, completed=done, description=version_id)

        yield report


ClusterReport = Callable[[str, float | None, str], None]  # (spec, seconds trained or None, log)


@contextmanager
def cluster_board(spec_names: list[str], *, budget_seconds: float) -> Iterator[ClusterReport]:
    """One row per spec sent to a cluster: queued, then seconds trained against the budget
    and the trainer's last log line."""
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[log]}", style="dim"), console=console,
                  transient=True, disable=not console.is_terminal) as bar:
        rows = {name: bar.add_task(f"training {name}", total=budget_seconds, log="queued")
                for name in spec_names}

        def report(spec_name: str, trained: float | None, last_line: str) -> None:
            bar.update(rows[spec_name], completed=min(trained or 0.0, budget_seconds),
                       log=last_line[-60:])

        yield report
