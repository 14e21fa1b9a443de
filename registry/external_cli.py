"""``registry external``: register a model trained anywhere and submit its daily predictions,
through the REST API (``--url`` / ``$PODIUM_URL``, ``--token`` / ``$PODIUM_TOKEN``)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from registry.client import DEFAULT_URL, Client
from registry.console import (
    JsonOption,
    TokenOption,
    UrlOption,
    console,
    new_app,
    print_json,
    table,
)

external_app = new_app("External versions: models trained anywhere, competing through daily "
                       "predictions submitted before each day's returns land.")


@external_app.command("register")
def register(
    track: Annotated[str, typer.Option("--track", help="The track it competes on.")],
    label: Annotated[str, typer.Option("--label", help="Its label (first part of its id).")],
    train_cutoff: Annotated[dt.datetime, typer.Option(
        "--train-cutoff", formats=["%Y-%m-%d"], metavar="DAY",
        help="Last day of data it was trained on.")],
    description: Annotated[str, typer.Option(help="What it is.")] = "",
    uri: Annotated[str | None, typer.Option(help="Where its artefact lives.")] = None,
    digest: Annotated[str | None, typer.Option(
        help="Its artefact's digest, e.g. sha256:<hex>.")] = None,
    metadata: Annotated[str | None, typer.Option(
        help="Free-form JSON object, or @FILE holding one.")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an external version as a challenger; prints its version id."""
    with Client(url, token) as client:
        version = client.register_external(
            track, label=label, train_cutoff=train_cutoff.date(), description=description,
            uri=uri, digest=digest, metadata=_metadata(metadata))
    if as_json:
        print_json(version)
        return
    print(version["version_id"])


@external_app.command("submit")
def submit(
    version_id: Annotated[str, typer.Argument(metavar="VERSION_ID",
                                              help="The external version.")],
    day: Annotated[dt.datetime, typer.Option(
        "--day", formats=["%Y-%m-%d"], metavar="DAY",
        help="The day whose returns the scores forecast.")],
    scores: Annotated[Path, typer.Argument(
        metavar="SCORES", help="asset,score as .csv or .parquet, or .json {asset: score}.",
        exists=True, dir_okay=False, readable=True)],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Submit one day's scores (before that day's returns land)."""
    with Client(url, token) as client:
        receipt = client.submit_predictions(version_id, day.date(), _read_scores(scores),
                                            as_parquet=scores.suffix.lower() != ".json")
    if as_json:
        print_json(receipt)
        return
    moved = receipt["submission"]
    ignored = f"; {moved['n_unknown']} unknown asset(s) ignored" if moved["n_unknown"] else ""
    again = "" if receipt["created"] else " (already stored, unchanged)"
    console.print(f"{version_id} {moved['day']}: {moved['n_assets']} score(s) stored"
                  f"{again}{ignored}, arrived {moved['arrived_at']}", markup=False)


@external_app.command("submissions")
def submissions(
    version_id: Annotated[str, typer.Argument(metavar="VERSION_ID",
                                              help="The external version.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the days submitted and when each arrived."""
    with Client(url, token) as client:
        rows = client.submissions(version_id)
    if as_json:
        print_json(rows)
        return
    console.print(table(f"{len(rows)} day(s) submitted", ["day", "arrived (UTC)", "scores",
                                                           "unknown", "by"],
                        ([r["day"], r["arrived_at"], r["n_assets"], r["n_unknown"], r["actor"]]
                         for r in rows)))


def _metadata(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        metadata = json.loads(text)
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict):
        raise typer.BadParameter("must be a JSON object (or @FILE holding one)",
                                 param_hint="--metadata")
    return metadata


def _read_scores(path: Path) -> Any:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            scores = json.loads(path.read_text(encoding="utf-8"))
            scores = scores.get("scores", scores) if isinstance(scores, dict) else scores
            if not isinstance(scores, dict):
                raise ValueError("expected a JSON object {asset: score}")
            return scores
        frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="SCORES") from None
    if not {"asset", "score"} <= set(frame.columns):
        raise typer.BadParameter(f"{path} needs columns asset and score", param_hint="SCORES")
    return frame
