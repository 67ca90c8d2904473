"""Short-lived caches for what every hit looks up but rarely changes: the account by site key and the
account's custom event definitions.

Writes clear the entries (services call the *_cache_clear functions). With a shared cache (Redis, as in
production) that is immediate everywhere; with the per-process default a TTL bounds staleness. Unknown
slugs are never cached, so a newly created event is usable at once in every process.
"""

from django.core.cache import cache

from custom_events.models import CustomEvent
from paminga.models import Account

TTL_SECONDS = 60


def _account_key(site_key: str) -> str:
    return f"acct:site:{site_key}"


def _events_key(account_id: int) -> str:
    return f"acct:{account_id}:events"


def account_get_by_site_key(*, site_key: str) -> Account | None:
    if not site_key or len(site_key) > 64:
        return None
    key = _account_key(site_key)
    account = cache.get(key)
    if account is None:
        account = Account.objects.filter(site_key=site_key).first()
        if account is not None:
            cache.set(key, account, TTL_SECONDS)
    return account


def account_cache_clear(*, account: Account) -> None:
    cache.delete(_account_key(account.site_key))


def custom_event_get_cached(*, account: Account, slug: str) -> CustomEvent | None:
    key = _events_key(account.pk)
    events = cache.get(key)
    if events is not None and slug in events:
        return events[slug]
    event = CustomEvent.objects.filter(account=account, slug=slug).first()
    if event is not None:
        events = dict(events or {})
        events[slug] = event
        cache.set(key, events, TTL_SECONDS)
    return event


def custom_events_cache_clear(*, account: Account) -> None:
    cache.delete(_events_key(account.pk))
