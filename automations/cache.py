"""Which custom events have no enabled actions, cached so that recording such an event costs no query.

Only the negative answer is cached. An event with actions reads them from the database on every occurrence
(one indexed query), so a cached entry can never name an action that has since been deleted — a run pointing at
a deleted action would make the event's own transaction fail.

The entry stores the event's action version; every change to an event's actions bumps that version, again
after its transaction commits (automations.services). A reader that looked at the database before the commit
therefore stores an entry under an older version, which no later reader trusts. With a shared cache (Redis in
production) a change is seen at once by every process; with the per-process default the TTL bounds how long
another process can miss a newly added action.
"""

import logging
import secrets

from django.core.cache import cache
from django.db import transaction

from paminga.cache import TTL_SECONDS, cache_delete, cache_get_many, cache_set

logger = logging.getLogger(__name__)


def _keys(custom_event_id: int) -> tuple[str, str]:
    return f"automations:event:{custom_event_id}:no-actions", f"automations:event:{custom_event_id}:version"


def event_actions_version(*, custom_event_id: int) -> tuple[bool, int]:
    """(whether the event is known to have no enabled actions, the current version). One cache round trip."""
    flag_key, version_key = _keys(custom_event_id)
    values = cache_get_many([flag_key, version_key])  # unreachable: nothing known, the database answers
    version = values.get(version_key, 0)
    return values.get(flag_key) == version, version


def event_has_no_actions_remember(*, custom_event_id: int, version: int) -> None:
    cache_set(_keys(custom_event_id)[0], version, TTL_SECONDS)


def actions_cache_clear(*, custom_event_id: int) -> None:
    """Invalidates the event's entry now (for reads in this transaction) and again once the transaction commits
    (for an entry another process wrote in between, from the database as it was before the commit)."""
    _bump(custom_event_id)
    transaction.on_commit(lambda: _bump(custom_event_id))


def _bump(custom_event_id: int) -> None:
    flag_key, version_key = _keys(custom_event_id)
    try:
        cache.incr(version_key)
    except ValueError:  # never bumped, or evicted: start from a version no stored entry carries
        cache_set(version_key, secrets.randbelow(2**31) + 1, None)
    except Exception:  # noqa: BLE001 - unreachable: an entry written before the outage lapses with its TTL
        logger.warning("Could not invalidate the actions cache of event %s", custom_event_id, exc_info=True)
    cache_delete(flag_key)
