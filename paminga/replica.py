"""Report reads on a PostgreSQL streaming replica (DATABASE_REPLICA_URL), writes and everything else on the primary.

Reports, their CSV exports and the GraphQL report queries read many rows; a replica takes that load off the
primary, which capture and the ingester write to. Only those reads move, and only inside `report_reads(...)`
(automations.reports.selectors.report_scope opens it): the router sends the report tables there, so a page that
writes and then reads its own write (every settings page, the API's mutations) never meets a replica's delay.
Definitions (custom events) are read on the primary even in a report, so a deleted event is gone at once.

A replica that cannot be reached, or lags more than REPLICA_MAX_LAG_SECONDS behind, is skipped: reports then
read the primary. Its state is checked at most every REPLICA_CHECK_SECONDS per process (one small query), so a
report costs no extra round trip in the common case.
"""

import contextvars
import logging
import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

logger = logging.getLogger(__name__)

REPLICA = "replica"
# The tables a report reads in one snapshot: the rollups, their bookkeeping and the raw rows they summarize.
REPORT_MODELS = frozenset(
    {
        "automations.EventDailyRollup",
        "automations.EventDailyBreakdown",
        "automations.TrafficDailyRollup",
        "automations.ReportRollupWatermark",
        "automations.ReportAccountRollup",
        "automations.ReportDirtyDay",
        "tracking.EventRecord",
        "tracking.Impression",
        "tracking.Session",
        "tracking.Contact",
        "tracking.Visitor",
    }
)

_reads_on: contextvars.ContextVar[str | None] = contextvars.ContextVar("report_reads_on", default=None)
_lock = threading.Lock()
_state = {"checked": -1e9, "usable": False}

# Seconds the replica is behind, 0 when it has replayed everything it received from a primary it is streaming
# from (the replay timestamp alone grows while the primary is idle, which is no lag at all).
LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
         AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN 0
    ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 1e9)
END
"""


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


def replica_lag_seconds() -> float:
    """How far behind the replica is (raises DatabaseError when it cannot be reached)."""
    with connections[REPLICA].cursor() as cursor:
        cursor.execute(LAG_SQL)
        return float(cursor.fetchone()[0])


def replica_usable() -> bool:
    """Whether report reads may go to the replica now: configured, reachable and not lagging. Cached."""
    if not replica_configured():
        return False
    now = time.monotonic()
    if now - _state["checked"] < settings.REPLICA_CHECK_SECONDS:
        return _state["usable"]
    with _lock:
        if now - _state["checked"] < settings.REPLICA_CHECK_SECONDS:
            return _state["usable"]
        try:
            lag = replica_lag_seconds()
            usable = lag <= settings.REPLICA_MAX_LAG_SECONDS
            if not usable:
                logger.warning("The replica lags %.1f s behind: reports read the primary meanwhile", lag)
        except DatabaseError:
            logger.warning("The replica cannot be reached: reports read the primary meanwhile", exc_info=True)
            connections[REPLICA].close()  # the next check connects afresh
            usable = False
        _state.update(checked=time.monotonic(), usable=usable)
        return usable


def replica_down() -> None:
    """A report failed on the replica: skip it until the next check."""
    with _lock:
        _state.update(checked=time.monotonic(), usable=False)
    connections[REPLICA].close()


def replica_state_forget() -> None:
    """Check again on the next report (tests, and after a failover)."""
    with _lock:
        _state.update(checked=-1e9, usable=False)


def report_database() -> str:
    """The database alias reports read now."""
    return REPLICA if replica_usable() else DEFAULT_DB_ALIAS


@contextmanager
def report_reads(alias: str):
    """Inside: the report tables are read on `alias` (report_database())."""
    token = _reads_on.set(alias)
    try:
        yield alias
    finally:
        _reads_on.reset(token)


class ReplicaRouter:
    """Report tables read inside report_reads() go to the alias it names; everything else to the primary."""

    def db_for_read(self, model, **hints):
        alias = _reads_on.get()
        if alias and alias != DEFAULT_DB_ALIAS and model._meta.label in REPORT_MODELS:
            return alias
        return None

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the replica is a copy of the primary: the same rows

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db != REPLICA
