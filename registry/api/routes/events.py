"""The event outbox and each event's webhook deliveries (state, attempts, last error).

Deliveries name the webhooks' URLs and their errors: only an ``admin`` token sees them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlmodel import col, select

from registry.api.deps import MAX_ROW_ID, AdminDep, ReaderDep, SessionDep
from registry.api.problems import problem_responses
from registry.api.schemas import DeliveryPublic, EventPage, EventPublic
from registry.errors import NotFound
from registry.ids import SLUG_JSON_PATTERN, validate_slug
from registry.models import Event, WebhookDelivery
from registry.store import as_utc

router = APIRouter(prefix="/events", tags=["events"])


@router.get("", response_model=EventPage, responses=problem_responses(401, 422, 503),
            summary="Transition events, oldest first")
def list_events(session: SessionDep, reader: ReaderDep, request: Request,
                after: Annotated[int, Query(ge=0, le=MAX_ROW_ID,
                                            description="only events with a larger id")] = 0,
                track: Annotated[str | None, Query(
                    json_schema_extra={"pattern": SLUG_JSON_PATTERN})] = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 100) -> EventPage:
    query = select(Event).where(col(Event.id) > after)
    if track is not None:
        query = query.where(Event.track == validate_slug(track, what="track"))
    events = list(session.exec(query.order_by(col(Event.id)).limit(limit + 1)))
    more = len(events) > limit
    events = events[:limit]
    deliveries: dict[int, list[WebhookDelivery]] = {}
    if events and reader.allows("admin"):
        rows = session.exec(select(WebhookDelivery)
                            .where(col(WebhookDelivery.event_id).in_([e.id for e in events]))
                            .order_by(col(WebhookDelivery.id)))
        for row in rows:
            deliveries.setdefault(row.event_id, []).append(row)
    items = [EventPublic(id=e.id or 0, kind=e.kind, track=e.track, version_id=e.version_id,
                         payload=e.payload, created_at=as_utc(e.created_at),
                         deliveries=[DeliveryPublic.model_validate(d)
                                     for d in deliveries.get(e.id or 0, [])])
             for e in events]
    next_url = (str(request.url.include_query_params(after=events[-1].id, limit=limit))
                if more else None)
    return EventPage(items=items, next=next_url)


@router.get("/{event_id}/deliveries", response_model=list[DeliveryPublic],
            responses=problem_responses(401, 403, 404, 422, 503),
            summary="One event's webhook deliveries (admin)")
def event_deliveries(event_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], session: SessionDep,
                     _: AdminDep) -> list[DeliveryPublic]:
    if session.get(Event, event_id) is None:
        raise NotFound(f"unknown event {event_id}", code="unknown_event")
    rows = session.exec(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
                        .order_by(col(WebhookDelivery.id)))
    return [DeliveryPublic.model_validate(row) for row in rows]
