"""The 四单 workflow, pure: 点单 (order) → 派单 (dispatch) → 接单 (accept or decline) → the
activity runs → 评单 (rating); and escalation of orders nobody accepts in time.

An order keeps every statement made about it (de-duplicated by content) and its state is a
replay of them in event-time order (then kind, then canonical content): so the state does
not depend on the order of arrival, and a statement that arrives before the one it follows
(a dispatch before its order) is held and takes effect once its predecessor is known. A
statement the replay cannot apply — a dispatch by a unit that does not hold the order, an
answer from a team it was not dispatched to, a rating by someone else than the requester —
changes nothing and is listed with the reason on the order.

Ownership: an order id is the township's that first stated it (``check_owner``): a
back-dated 点单 from another township, which the replay would put first, is refused rather
than allowed to take the order over.

Escalation: an order must be accepted within ``accept_within`` of reaching its current
level (placed there, or escalated there). If it is not, it escalates to the level above —
the parent of the unit holding it, as the registry's accepted ``unit.registered`` facts say
(activities learns the unit tree from them; the order events need not carry it). The
escalation is a statement too, dated at the deadline, so an acceptance dated before the
deadline that arrives late still wins in the replay. A declined dispatch does not stop the
clock. At the top of the tree (no known parent) the order stays, overdue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.events import Data, statement
from shared.ownership import Owner, foreign, not_yours, owner_after

Kind = Literal["placed", "escalated", "dispatched", "answered", "rated"]
# At one instant, replay in the workflow's own order.
_KIND_ORDER = {"placed": 0, "escalated": 1, "dispatched": 2, "answered": 3, "rated": 4}


@dataclass(frozen=True)
class OrderStatement:
    kind: str
    at: datetime
    content: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Order:
    order_id: str
    statements: tuple[OrderStatement, ...] = ()
    owner: Owner = None  # the township that first stated the order id (shared.ownership)


class RefusedOrder(ValueError):
    def __init__(self, reason: str, field: str = "data.order_id") -> None:
        super().__init__(reason)
        self.field = field


def check_owner(current: Order | None, order_id: str, sender_township: str | None) -> None:
    """Ownership: an order id is the township's that first stated it (点单, or whichever
    statement came first); another township's statement about it — a back-dated 点单 that
    would replay first and take the order over, a dispatch, an answer, a rating — is
    refused, naming nothing of the owner. The office (which dispatches escalated orders)
    may state anything."""
    if current is not None and foreign(current.owner, sender_township):
        raise RefusedOrder(not_yours("order", order_id))


def claimed(order: Order, sender_township: str | None, unit_township: str | None) -> Order:
    return replace(order, owner=owner_after(order.owner, sender_township, unit_township))


def add_statement(current: Order | None, order_id: str, kind: Kind, data: Data, at: datetime) -> Order | None:
    """The order with this statement, or None if it was already known."""
    order = current or Order(order_id=order_id)
    content = statement(at, data)[1]
    new = OrderStatement(kind=kind, at=at, content=content, data=data.model_dump(mode="json"))
    if any((s.kind, s.at, s.content) == (kind, at, content) for s in order.statements):
        return None
    ordered = sorted((*order.statements, new), key=lambda s: (s.at, _KIND_ORDER[s.kind], s.content))
    return replace(order, statements=tuple(ordered))


@dataclass(frozen=True)
class Escalation:
    from_unit_id: str
    to_unit_id: str
    at: datetime


@dataclass(frozen=True)
class OrderView:
    order_id: str
    status: str  # awaiting-order, placed, dispatched, declined, escalated, accepted, done, rated
    requester_id: str | None = None
    requester_kind: str | None = None
    need: str | None = None
    handler_id: str | None = None  # the unit holding the order now
    team_id: str | None = None
    activity_id: str | None = None
    rating: int | None = None
    comment: str | None = None
    rated_at: datetime | None = None
    accept_due_at: datetime | None = None  # when it escalates if nobody accepts it
    escalations: tuple[Escalation, ...] = ()
    declined_by: tuple[str, ...] = ()
    ignored: tuple[tuple[str, datetime, str], ...] = field(default=())


WAITING = ("placed", "dispatched", "declined", "escalated")


def view(order: Order, accept_within: timedelta, activity_completed: bool = False) -> OrderView:
    """Replay the order's statements. ``activity_completed``: whether the activity serving it
    has been reported completed (a rating counts only then)."""
    v = OrderView(order_id=order.order_id, status="awaiting-order")
    for s in order.statements:
        d = s.data
        problem: str | None = None
        if s.kind == "placed":
            if v.status != "awaiting-order":
                problem = "the order was already placed"
            else:
                v = replace(
                    v,
                    status="placed",
                    requester_id=d["requester_id"],
                    requester_kind=d["requester_kind"],
                    need=d["need"],
                    handler_id=d["unit_id"],
                    accept_due_at=s.at + accept_within,
                )
        elif v.status == "awaiting-order":
            problem = "the order has not been placed"
        elif s.kind == "escalated":
            if v.status not in WAITING:
                problem = f"the order was already {v.status}"
            elif d["from_unit_id"] != v.handler_id:
                problem = f"the order is with {v.handler_id}, not {d['from_unit_id']}"
            else:
                v = replace(
                    v,
                    status="escalated",
                    handler_id=d["to_unit_id"],
                    team_id=None,
                    accept_due_at=s.at + accept_within,
                    escalations=(*v.escalations, Escalation(d["from_unit_id"], d["to_unit_id"], s.at)),
                )
        elif s.kind == "dispatched":
            if v.status not in WAITING:
                problem = f"the order was already {v.status}"
            elif d["dispatcher_id"] != v.handler_id:
                problem = f"the order is with {v.handler_id}, not {d['dispatcher_id']}"
            else:
                v = replace(v, status="dispatched", team_id=d["team_id"])
        elif s.kind == "answered":
            if v.status != "dispatched":
                problem = f"the order is {v.status}, not awaiting an answer"
            elif d["team_id"] != v.team_id:
                problem = f"the order was dispatched to {v.team_id}, not {d['team_id']}"
            elif d["accepted"]:
                v = replace(v, status="accepted", activity_id=d["activity_id"], accept_due_at=None)
            else:
                v = replace(v, status="declined", team_id=None, declined_by=(*v.declined_by, d["team_id"]))
        elif s.kind == "rated":
            if v.status != "accepted":
                problem = f"the order is {v.status}: only a served order can be rated"
            elif not activity_completed:
                problem = "the activity serving the order has not been reported completed"
            elif d["requester_id"] != v.requester_id:
                problem = f"only the requester {v.requester_id} rates the order, not {d['requester_id']}"
            else:
                v = replace(v, status="rated", rating=d["rating"], comment=d["comment"], rated_at=s.at)
        if problem is not None:
            v = replace(v, ignored=(*v.ignored, (s.kind, s.at, problem)))
    if v.status == "accepted" and activity_completed:
        v = replace(v, status="done")
    return v


@dataclass(frozen=True)
class CountedRating:
    activity_id: str
    rating: int
    rated_at: datetime


def counted_rating(order: Order | None, accept_within: timedelta) -> CountedRating | None:
    """The rating that counts for supervision's 四单 item: the view's, with the activity
    taken as completed — supervision scores only completed activities, so it applies that
    condition itself, and a rating need not be restated when the completion comes later."""
    if order is None:
        return None
    v = view(order, accept_within, activity_completed=True)
    if v.status != "rated" or v.activity_id is None or v.rating is None or v.rated_at is None:
        return None
    return CountedRating(v.activity_id, v.rating, v.rated_at)


def due_escalation(
    order: Order, accept_within: timedelta, parent_of: Callable[[str], str | None], now: datetime
) -> Escalation | None:
    """The next escalation due at ``now``, if any (call again after recording it: an order
    overdue for long climbs one level per ``accept_within``)."""
    v = view(order, accept_within)
    if v.status not in WAITING or v.accept_due_at is None or v.accept_due_at > now or v.handler_id is None:
        return None
    parent = parent_of(v.handler_id)
    if parent is None:
        return None
    return Escalation(from_unit_id=v.handler_id, to_unit_id=parent, at=v.accept_due_at)
