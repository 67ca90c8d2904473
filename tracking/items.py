"""What capture hands to the ingester: one typed item per accepted beacon hit or API event.

An item holds only what capture checked and the time it arrived, so that it can wait in the queue (as compact JSON)
and be recorded later exactly as it would have been at once. `received_at` is the server's clock at capture: a hit's
time is derived from it, never from when the ingester happens to run.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .hits import Hit


@dataclass(frozen=True)
class ApiEvent:
    """One `triggerCustomEvent` input, its envelope validated (tracking.api.api_event_clean)."""

    slug: str
    email: str
    page_url: str = ""
    utm: dict = field(default_factory=dict)
    marketing_channel: str = ""
    marketing_source: str = ""
    metadata: dict | None = None
    idempotency_key: str | None = None
    visitor_id: str | None = None


@dataclass(frozen=True)
class HitItem:
    account_id: int
    received_at: datetime
    hit: Hit
    # Where the item waits in the queue, (shard, entry id), once read from it: the ingester's checkpoint.
    position: tuple[str, str] | None = None

    @property
    def order_key(self) -> str:
        return self.hit.visitor


@dataclass(frozen=True)
class ApiItem:
    account_id: int
    received_at: datetime
    event: ApiEvent
    position: tuple[str, str] | None = None

    @property
    def order_key(self) -> str:
        # A visitor's items stay in order with its beacon hits; a contact's with its other API events.
        return self.event.visitor_id or self.event.email


Item = HitItem | ApiItem


def _time_dump(value: datetime) -> float:
    return value.timestamp()


def _time_load(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def item_dumps(item: Item) -> str:
    """The item as compact JSON (what the queue stores)."""
    # vars(), not asdict(): the fields are plain values, and asdict() deep-copies the metadata on every hit.
    if isinstance(item, HitItem):
        # Everything but `automated`, which is capture's alone (a bot is decided before queueing): left out, so that a
        # queued hit reads the same to an ingester of the version before, while a deploy replaces capture and
        # ingesters one after the other.
        hit = {key: value for key, value in vars(item.hit).items() if key != "automated"}
        body = {"k": "hit", "a": item.account_id, "t": _time_dump(item.received_at), "h": hit}
    else:
        body = {"k": "api", "a": item.account_id, "t": _time_dump(item.received_at), "e": vars(item.event)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def item_loads(raw: str | bytes, *, position: tuple[str, str] | None = None) -> Item:
    """The item of item_dumps(); ValueError when it is not one."""
    try:
        body = json.loads(raw)
        kind, account_id, received_at = body["k"], int(body["a"]), _time_load(float(body["t"]))
        if kind == "hit":
            return HitItem(account_id=account_id, received_at=received_at, hit=Hit(**body["h"]), position=position)
        if kind == "api":
            return ApiItem(
                account_id=account_id, received_at=received_at, event=ApiEvent(**body["e"]), position=position
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a queued item: {exc}") from None
    raise ValueError(f"not a queued item: kind {kind!r}")
