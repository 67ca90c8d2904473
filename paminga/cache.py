"""Short-lived caches for what every hit and API call looks up but rarely changes (here: the account by site key and
the helpers every app's cache uses; custom_events.cache keeps the definitions, automations.cache the actions).

Writes clear the entries (services call the *_cache_clear functions). With a shared cache (Redis, as in
production) that is immediate everywhere; with the per-process default a TTL bounds staleness. Unknown
slugs are never cached, so a newly created event is usable at once in every process.

In front of the shared cache, each process keeps what it read for MEMO_SECONDS: a hit then costs no cache round trip
(and no unpickling), and a change reaches the other processes that much later. The process that makes the change
sees it at once.

Neither backing service may stop capture: a cache that cannot be reached reads as empty (the database answers), and
when the database cannot be reached the last value read is used, stale, for as long as the cache or this process
still holds it (STALE_SECONDS). Only a site key that neither has ever seen needs the database.
"""

import logging
import re
import time

from django.core.cache import cache
from django.db import DatabaseError

from .models import Account

logger = logging.getLogger(__name__)

TTL_SECONDS = 60
# How long a value stays usable when the database cannot be reached to read it again.
STALE_SECONDS = 24 * 3600
MEMO_SECONDS = 2.0
MEMO_MAX_ENTRIES = 10_000

# key -> (fresh until, on time.monotonic(); value). Entries outlive their freshness as the last value known.
_memo: dict[str, tuple[float, object]] = {}
_cache_down_logged = 0.0


def memo_get(key: str, *, stale: bool = False):
    """What this process remembered under `key` less than MEMO_SECONDS ago (or ever, with `stale`), or None."""
    entry = _memo.get(key)
    if entry is not None and (stale or entry[0] > time.monotonic()):
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


def _cache_error(operation: str) -> None:
    # Once a minute per process: an outage must not flood the log with one line per request.
    global _cache_down_logged
    if time.monotonic() - _cache_down_logged > 60:
        _cache_down_logged = time.monotonic()
        logger.warning(
            "The cache cannot be reached (%s); reading from the database meanwhile", operation, exc_info=True
        )


def cache_get(key: str, default=None):
    """cache.get(), or `default` when the cache cannot be reached."""
    try:
        return cache.get(key, default)
    except Exception:  # noqa: BLE001 - whatever the cache client raises, the request goes on without it
        _cache_error("get")
        return default


def cache_get_many(keys: list[str]) -> dict:
    try:
        return cache.get_many(keys)
    except Exception:  # noqa: BLE001
        _cache_error("get_many")
        return {}


def cache_set(key: str, value, timeout: float | None) -> None:
    try:
        cache.set(key, value, timeout)
    except Exception:  # noqa: BLE001
        _cache_error("set")


def cache_delete(key: str) -> None:
    try:
        cache.delete(key)
    except Exception:  # noqa: BLE001 - the entry then expires with its TTL
        _cache_error("delete")


def _account_key(site_key: str) -> str:
    return f"acct:site:{site_key}"


def _fresh(entry) -> bool:
    return entry is not None and entry[0] > time.time()


# What paminga.models.new_site_key() makes; anything else (a NUL byte, a quote) is no site key and never reaches
# a query.
SITE_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def site_key_valid(site_key: str) -> bool:
    return bool(site_key) and SITE_KEY_PATTERN.fullmatch(site_key) is not None


def account_get_by_site_key(*, site_key: str) -> Account | None:
    """The account of a site key, or None. Raises DatabaseError only when the database cannot be reached and no
    value was ever read for this key."""
    if not site_key_valid(site_key):
        return None
    key = _account_key(site_key)
    account = memo_get(key)
    if account is not None:
        return account
    # The shared cache holds (fresh until, account) for STALE_SECONDS: fresh for TTL_SECONDS, a fallback after.
    entry = cache_get(key)
    if _fresh(entry):
        memo_set(key, entry[1])
        return entry[1]
    try:
        account = Account.objects.filter(site_key=site_key, deleted_at__isnull=True).first()
    except DatabaseError:
        stale = entry[1] if entry is not None else memo_get(key, stale=True)
        if stale is None:
            raise
        return stale
    if account is not None:
        cache_set(key, (time.time() + TTL_SECONDS, account), STALE_SECONDS)
        memo_set(key, account)
    return account


def account_cache_clear(*, account: Account) -> None:
    cache_delete(_account_key(account.site_key))
    memo_clear(_account_key(account.site_key))
