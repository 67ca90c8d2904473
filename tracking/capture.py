"""Capture: the front half of the write path, shared by the collect endpoint and the GraphQL API.

It checks what needs no write (the caller has already parsed the envelope: hits.hit_parse,
tracking.api.api_event_clean), then hands each accepted item on: appended to the durable queue
when INGEST_QUEUE_URL is set, and recorded by the same ingester inline, as a batch of one, when it is not.

Outages (docs/tracking.md):
- the queue cannot be reached: capture ingests inline, so hits keep being recorded while the database is up;
- the database cannot be reached: with the queue up nothing here needs it (accounts and definitions come from caches
  that keep the last value read); the ingester waits and resumes by itself;
- both: `Unavailable`, which the endpoints answer with 503 and Retry-After, and the beacon retries.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError

from custom_events.cache import custom_event_get_cached
from paminga.models import Account

from . import queue
from .bots import bot_reason
from .hits import Hit, HitError
from .ingest import Outcome, ingest
from .items import ApiEvent, Definition, Item
from .models import RejectedHit
from .privacy import untracked_hit_note
from .services import email_normalize, unknown_event_message

logger = logging.getLogger(__name__)
Reason = RejectedHit.Reason


@dataclass
class Unavailable(Exception):
    """Neither the queue nor the database can take the items now: answer 503 with Retry-After."""

    retry_after: int
    message: str = "The hit could not be recorded right now; retry later."


def hit_from_bot(*, account: Account, hit: Hit, user_agent: str) -> bool:
    """Whether the hit comes from a bot the account filters (a crawler's user agent, an automated browser): then it
    is counted for the event debugger and must not be recorded. Checked before anything else about the hit, so that
    a bot's hit with an unknown slug is not listed as a site's mistake."""
    reason = bot_reason(account=account, user_agent=user_agent, automated=hit.automated)
    if reason is None:
        return False
    untracked_hit_note(account=account, reason=reason)  # counted like GPC hits, sampled
    return True


def _definition(custom_event) -> Definition:
    return Definition(id=custom_event.pk, counts_as_conversion=custom_event.counts_as_conversion)


def hit_check(*, account: Account, hit: Hit) -> Definition | None:
    """Raises HitError for a hit that can be refused without writing: an unknown event slug, an invalid email.
    Returns the definition an event fires, as it is now (None when the database cannot be reached to look the slug
    up: the hit is accepted and the ingester decides)."""
    if hit.type == "event":
        try:
            custom_event = custom_event_get_cached(account=account, slug=hit.slug)
        except DatabaseError:
            return None
        if custom_event is None:
            raise HitError(Reason.UNKNOWN_EVENT, unknown_event_message(hit.slug), status=422, slug=hit.slug)
        return _definition(custom_event)
    elif hit.type == "identify":
        try:
            email_normalize(hit.email)
        except ValidationError:
            raise HitError(Reason.INVALID_EMAIL, "identify() needs a valid email address.", status=422) from None
    return None


def api_event_check(*, account: Account, event: ApiEvent) -> ValidationError | Definition | None:
    """The refusal of an API event that needs no write: its slug is none of the account's events, or its metadata
    breaks the event's enforced schema (answered INVALID_METADATA now, before anything is queued). Otherwise the
    definition it fires, as it is now, or None when the database cannot be reached to look it up."""
    from custom_events.metadata_schema import metadata_schema_refusal

    from .api import unknown_event_error

    try:
        definition = custom_event_get_cached(account=account, slug=event.slug)
    except DatabaseError:
        return None  # the ingester decides
    if definition is None:
        return unknown_event_error(event.slug)
    return metadata_schema_refusal(custom_event=definition, metadata=event.metadata) or _definition(definition)


def capture(*, account: Account, items: list[Item]) -> list[Outcome]:
    """Queues the accepted items (each answered `accepted`) or records them inline (each answered as the ingester
    did). Raises Unavailable when neither can be done now."""
    if not items:
        return []
    if queue.queue_enabled():
        try:
            queue.queue_append(items)
            return [Outcome("accepted") for _ in items]
        except queue.QueueFull:
            raise Unavailable(
                settings.INGEST_RETRY_AFTER_SECONDS, "Too many hits are waiting to be recorded; retry later."
            ) from None
        except queue.QueueUnavailable:
            pass  # recorded inline below, as without a queue
    try:
        return ingest(items, accounts={account.pk: account})
    except DatabaseError:
        logger.warning("Could not record %d item(s) of account %s", len(items), account.pk, exc_info=True)
        raise Unavailable(settings.INGEST_RETRY_AFTER_SECONDS) from None
