"""A page per version at ``GET /versions/{version_id}``: its state and audit history, its
provenance, its shadow record, and its evidence against the champion (the paired daily
difference, its running mean with the gate's anytime bound over time, the gate's report).

Read like the leaderboard page (``reader_page``): open with ``server.public_reads``, else a
read token in the ``Authorization`` header or the page's sign-in cookie.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from registry.api.html import render_html
from registry.api.routes.page import CHAMPION_COLOUR, reader_page
from registry.api.routes.static import charts_src, plotly_src
from registry.db import read_session
from registry.gate_cli import format_quantity, gate_rows

router = APIRouter(include_in_schema=False)
BOUND_COLOUR = "#cf222e"


@router.get("/versions/{version_id}", response_class=HTMLResponse)
def version_page(request: Request, version_id: str) -> Response:
    """One version: history, provenance, shadow record and evidence against the champion."""
    return reader_page(request, track=None, render=lambda principal, signed_in:
                       _render(request, version_id=version_id))


def _render(request: Request, *, version_id: str) -> Response:
    from registry.version_evidence import read_version_evidence  # pandas, scipy: when needed

    with read_session(request.app.state.engine) as session:
        version = read_version_evidence(session, version_id=version_id,
                                        config=request.app.state.config)
    figures = [f for f in (_record_figure(version), _evidence_figure(version)) if f]
    report = version["report"]
    return render_html(request, "version.html", status=200, version=version,
                       rules=gate_rows(report) if report else [], figures=figures,
                       provenance=_provenance(version["details"]), plotly_src=plotly_src(),
                       charts_src=charts_src())


def _provenance(details: dict[str, Any]) -> list[tuple[str, str]]:
    """The registration's details as (key, text) rows, nested values as compact JSON."""
    rows = []
    for key, value in details.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                               separators=(", ", ": "))
        rows.append((str(key), text))
    return rows


def _record_figure(version: dict[str, Any]) -> dict[str, Any] | None:
    curve = version["record"]["curve"]
    if not curve["days"]:
        return None
    import plotly.graph_objects as go

    figure = go.Figure(go.Scatter(
        x=curve["days"], y=[100.0 * v for v in curve["cumulative_net"]], mode="lines",
        name="cumulative net", line={"color": CHAMPION_COLOUR, "width": 2},
        hovertemplate="%{x}<br>%{y:.2f} %"))
    _layout(figure, "cumulative net return (%)")
    return {"id": "record", "label": f"Cumulative net return of {version['version_id']}",
            "figure": json.loads(figure.to_json())}


def _evidence_figure(version: dict[str, Any]) -> dict[str, Any] | None:
    evidence = version["evidence"]
    if not evidence or not evidence["days"]:
        return None
    import plotly.graph_objects as go

    bp = lambda values: [None if v is None else 1e4 * v for v in values]  # noqa: E731
    days = evidence["days"]
    figure = go.Figure()
    figure.add_trace(go.Bar(x=days, y=bp(evidence["difference"]), name="daily net difference",
                            marker={"color": "#afb8c1"}, hovertemplate="%{x}<br>%{y:.2f} bp"))
    figure.add_trace(go.Scatter(x=days, y=bp(evidence["running_mean"]), mode="lines",
                                name="running mean", line={"color": CHAMPION_COLOUR, "width": 2},
                                hovertemplate="%{x}<br>%{y:.2f} bp"))
    figure.add_trace(go.Scatter(x=days, y=bp(evidence["lower_bound"]), mode="lines",
                                name="gate's lower bound", line={"color": BOUND_COLOUR,
                                                                 "width": 2, "dash": "dash"},
                                hovertemplate="%{x}<br>%{y:.2f} bp"))
    figure.add_hline(y=1e4 * evidence["margin"], line={"color": "#636c76", "width": 1},
                     annotation_text=f"margin {format_quantity(evidence['margin'], 'return')}")
    _layout(figure, "bp per day vs the champion")
    return {"id": "evidence",
            "label": f"Daily net difference against {evidence['champion']}, its running mean "
                     "and the gate's lower bound",
            "figure": json.loads(figure.to_json())}


def _layout(figure: Any, y_title: str) -> None:
    figure.update_layout(
        template="plotly_white", height=360, margin={"l": 60, "r": 20, "t": 20, "b": 40},
        xaxis_title="day", yaxis_title=y_title, hovermode="x unified",
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0})
