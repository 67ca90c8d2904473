"""Short-lived caches for what every hit looks up but rarely changes: the account by site key and the
account's custom event definitions.

Writes clear the entries (services call the *_cache_clear functions). With a shared cache (Redis, as in
production) that is immediate everywhere; with the per-process default a TTL bounds staleness. Unknown
slugs are never cached, so a newly created event is usable at once in every process.

In front of the shared cache, each process keeps what it read for MEMO_SECONDS: a hit then costs no cache round trip
(and no unpickling), and a change reaches the other processes that much later. The process that makes the change
sees it at once.
"""

import time

from django.core.cache import cache

from custom_events.models import CustomEvent
from paminga.models import Account

TTL_SECONDS = 60
MEMO_SECONDS = 2.0
MEMO_MAX_ENTRIES = 10_000

_memo: dict[str, tuple[float, object]] = {}


def memo_get(key: str):
    """What this process remembered under `key` less than MEMO_SECONDS ago, or None."""
    entry = _memo.get(key)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1]
    return None


def memo_set(key: str, value) -> None:
    if len(_memo) >= MEMO_MAX_ENTRIES:
        _memo.clear()
    _memo[key] = (time.monotonic() + MEMO_SECONDS, value)


def memo_clear(key: str) -> None:
    _memo.pop(key, None)


def memo_clear_all() -> None:
    """Forgets what this process remembered (tests: ids are reused between tests that roll back)."""
    _memo.clear()


def _account_key(site_key: str) -> str:
    return f"acct:site:{site_key}"


def _events_key(account_id: int) -> str:
    return f"acct:{account_id}:events"


def account_get_by_site_key(*, site_key: str) -> Account | None:
    if not site_key or len(site_key) > 64:
        return None
    key = _account_key(site_key)
    account = memo_get(key)
    if account is not None:
        return account
    account = cache.get(key)
    if account is None:
        account = Account.objects.filter(site_key=site_key).first()
        if account is not None:
            cache.set(key, account, TTL_SECONDS)
    if account is not None:
        memo_set(key, account)
    return account


def account_cache_clear(*, account: Account) -> None:
    cache.delete(_account_key(account.site_key))
    memo_clear(_account_key(account.site_key))


def custom_event_get_cached(*, account: Account, slug: str) -> CustomEvent | None:
    key = _events_key(account.pk)
    events = memo_get(key)
    if events is not None and slug in events:
        return events[slug]
    events = cache.get(key)
    if events is not None and slug in events:
        memo_set(key, events)
        return events[slug]
    event = CustomEvent.objects.filter(account=account, slug=slug).first()
    if event is not None:
        events = dict(events or {})
        events[slug] = event
        cache.set(key, events, TTL_SECONDS)
        memo_set(key, events)
    return event


def custom_events_cache_clear(*, account: Account) -> None:
    cache.delete(_events_key(account.pk))
    memo_clear(_events_key(account.pk))
