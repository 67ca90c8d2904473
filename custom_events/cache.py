"""The account's custom event definitions by slug, cached for the hot paths (capture and the ingester): see
paminga.cache for the layers (process memo, shared cache, last value when the database cannot be reached). Unknown
slugs are never cached, so a newly created event is usable at once in every process; services clear the entry on
every change of a definition."""

import time

from django.db import DatabaseError

from paminga.cache import STALE_SECONDS, TTL_SECONDS, cache_delete, cache_get, cache_set, memo_clear, memo_get, memo_set
from paminga.models import Account

from .models import CustomEvent


def _events_key(account_id: int) -> str:
    return f"acct:{account_id}:events"


def _fresh(entry) -> bool:
    return entry is not None and entry[0] > time.time()


def custom_event_get_cached(*, account: Account, slug: str) -> CustomEvent | None:
    """The account's custom event with this slug, or None (also for a deleted one, whose rows are still being
    removed: capture refuses its hits as UNKNOWN_EVENT). Raises DatabaseError when the database cannot be reached
    and the slug was not read before."""
    key = _events_key(account.pk)
    events = memo_get(key)
    if events is not None and slug in events:
        return events[slug]
    entry = cache_get(key)
    if entry is not None and slug in entry[1] and _fresh(entry):
        memo_set(key, entry[1])
        return entry[1][slug]
    try:
        event = CustomEvent.objects.filter(account=account, slug=slug, deleted_at__isnull=True).first()
    except DatabaseError:
        known = entry[1] if entry is not None else memo_get(key, stale=True)
        if known is None or slug not in known:
            raise
        return known[slug]
    if event is not None:
        events = dict(entry[1]) if _fresh(entry) else {}
        events[slug] = event
        cache_set(key, (time.time() + TTL_SECONDS, events), STALE_SECONDS)
        memo_set(key, events)
    return event


def custom_events_cache_clear(*, account: Account) -> None:
    cache_delete(_events_key(account.pk))
    memo_clear(_events_key(account.pk))
