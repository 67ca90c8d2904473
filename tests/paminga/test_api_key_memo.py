"""The verified API key kept per process (paminga.cache's memo) in front of the shared cache, and the throttled
last-use writes."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from paminga import cache as paminga_cache
from paminga.models import ApiKey
from paminga.services import _api_key_cache_key, api_key_authenticate, api_key_create, api_key_revoke


class Clock:
    """Stands in for time.monotonic() in paminga.cache, so a test can step past MEMO_SECONDS."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(paminga_cache.time, "monotonic", clock)
    return clock


@pytest.fixture
def key_and_secret(account):
    return api_key_create(account=account, name="CRM")


def _revoke_in_another_process(api_key: ApiKey) -> None:
    # What api_key_revoke() does elsewhere with a shared cache: the row and the shared entry, not this process's memo.
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())
    cache.delete(_api_key_cache_key(api_key.secret_hash))


def test_a_remembered_key_costs_no_query_and_no_cache_round_trip(key_and_secret, clock, monkeypatch):
    api_key, secret = key_and_secret
    assert api_key_authenticate(secret=secret) == api_key
    cache_reads = []
    monkeypatch.setattr(cache, "get", lambda *args, **kwargs: cache_reads.append(args))

    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            assert api_key_authenticate(secret=secret) == api_key

    assert len(queries) == 0
    assert cache_reads == []


def test_a_key_revoked_elsewhere_is_refused_once_the_memo_expires(key_and_secret, clock):
    api_key, secret = key_and_secret
    assert api_key_authenticate(secret=secret) == api_key

    _revoke_in_another_process(api_key)

    clock.now += paminga_cache.MEMO_SECONDS - 0.1
    assert api_key_authenticate(secret=secret) == api_key  # within the documented bound
    clock.now += 0.2
    assert api_key_authenticate(secret=secret) is None
    assert cache.get(_api_key_cache_key(api_key.secret_hash)) is None


def test_revoking_in_this_process_takes_effect_at_once(key_and_secret, clock):
    api_key, secret = key_and_secret
    assert api_key_authenticate(secret=secret) == api_key

    api_key_revoke(api_key=api_key)

    assert api_key_authenticate(secret=secret) is None


def test_last_use_is_written_at_most_once_a_minute(key_and_secret, clock, monkeypatch):
    api_key, secret = key_and_secret
    start = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: start)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            api_key_authenticate(secret=secret)
    updates = [q for q in queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == start

    later = start + timedelta(seconds=61)
    monkeypatch.setattr(timezone, "now", lambda: later)
    with CaptureQueriesContext(connection) as queries:
        api_key_authenticate(secret=secret)
        api_key_authenticate(secret=secret)
    assert len([q for q in queries if q["sql"].startswith("UPDATE")]) == 1
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == later


def test_the_last_use_write_refuses_a_key_revoked_meanwhile_and_does_not_cache_it_again(
    key_and_secret, clock, monkeypatch
):
    api_key, secret = key_and_secret
    start = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: start)
    assert api_key_authenticate(secret=secret) == api_key
    _revoke_in_another_process(api_key)

    # Still remembered in this process, but its last-use write is due: that write sees the revocation.
    monkeypatch.setattr(timezone, "now", lambda: start + timedelta(seconds=61))
    assert api_key_authenticate(secret=secret) is None

    assert cache.get(_api_key_cache_key(api_key.secret_hash)) is None
    assert paminga_cache.memo_get(_api_key_cache_key(api_key.secret_hash)) is None
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == start
