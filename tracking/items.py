"""What capture hands to the ingester: one typed item per accepted beacon hit or API event.

An item holds only what capture checked and the time it arrived, so that it can wait in the queue (as compact JSON)
and be recorded later exactly as it would have been at once. `received_at` is the server's clock at capture: a hit's
time is derived from it, never from when the ingester happens to run.
"""

import json
import secrets
from dataclasses import dataclass, field, fields
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


def capture_id() -> str:
    """A random id for an item capture accepted: what makes it recorded once, however often it is delivered."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Definition:
    """The custom event an item fires, as capture found it: the ingester records the event under this definition,
    with this conversion flag (the snapshot of when it fired), even when the definition is renamed or edited while
    the item waits in the queue."""

    id: int
    counts_as_conversion: bool


@dataclass(frozen=True)
class HitItem:
    account_id: int
    received_at: datetime
    hit: Hit
    # Where the item waits in the queue, (shard, entry id), once read from it.
    position: tuple[str, str] | None = None
    definition: Definition | None = None

    @property
    def order_key(self) -> str:
        return self.hit.visitor


@dataclass(frozen=True)
class ApiItem:
    account_id: int
    received_at: datetime
    event: ApiEvent
    position: tuple[str, str] | None = None
    definition: Definition | None = None
    # Capture's id of the event, its key when the caller gave no idempotency_key: an event that reached the queue
    # although capture saw the queue fail (the reply lost, then recorded inline) is then recorded once.
    capture_id: str | None = None

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
        body["c"] = item.capture_id
    if item.definition is not None:
        body["d"] = [item.definition.id, item.definition.counts_as_conversion]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _known(cls, values: dict) -> dict:
    # Fields a newer capture added are left out rather than refused: during a deploy, an ingester of the version
    # before reads what the new capture queued.
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in values.items() if key in names}


def item_loads(raw: str | bytes, *, position: tuple[str, str] | None = None) -> Item:
    """The item of item_dumps(); ValueError when it is not one."""
    try:
        body = json.loads(raw)
        kind, account_id, received_at = body["k"], int(body["a"]), _time_load(float(body["t"]))
        definition = Definition(int(body["d"][0]), bool(body["d"][1])) if body.get("d") else None
        common = {"account_id": account_id, "received_at": received_at, "position": position, "definition": definition}
        if kind == "hit":
            return HitItem(hit=Hit(**_known(Hit, body["h"])), **common)
        if kind == "api":
            return ApiItem(event=ApiEvent(**_known(ApiEvent, body["e"])), capture_id=body.get("c"), **common)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a queued item: {exc}") from None
    raise ValueError(f"not a queued item: kind {kind!r}")
