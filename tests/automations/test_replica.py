"""Report reads on a real PostgreSQL streaming replica: a private primary (initdb) and its replica
(pg_basebackup -R) on free loopback ports, trust authentication, removed afterwards. The reports run in a process of
their own (replica_probe.py) configured with DATABASE_URL and DATABASE_REPLICA_URL, as a deployment would be."""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.automations.services import free_port, require_services, service_missing

PROBE = Path(__file__).with_name("replica_probe.py")


def _bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        service_missing(
            "needs the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) in /usr/lib/postgresql/*/bin"
        )
    return os.path.dirname(found[-1])


def _as_postgres(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str]) -> None:
    subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=120)


@pytest.fixture
def streaming_pair():
    require_services(postgresql=True)
    bindir = _bindir()
    root = tempfile.mkdtemp(prefix="paminga-replica-")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    primary, secondary = os.path.join(root, "primary"), os.path.join(root, "replica")
    ports = free_port(), free_port()
    common = f"-k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    started = []
    try:
        _run([f"{bindir}/initdb", "-D", primary, "-A", "trust", "-U", "postgres", "--no-sync"])
        _run(
            [f"{bindir}/pg_ctl", "-D", primary, "-l", f"{primary}.log", "-w", "start", "-o",
             f"-p {ports[0]} {common} -c wal_level=replica -c max_wal_senders=4"]
        )  # fmt: skip
        started.append(primary)
        _run(
            [f"{bindir}/pg_basebackup", "-h", "127.0.0.1", "-p", str(ports[0]), "-U", "postgres", "-D", secondary,
             "-R", "-X", "stream", "--no-sync"]
        )  # fmt: skip
        _run(
            [f"{bindir}/pg_ctl", "-D", secondary, "-l", f"{secondary}.log", "-w", "start", "-o",
             f"-p {ports[1]} {common} -c hot_standby=on"]
        )  # fmt: skip
        started.append(secondary)
        yield {
            "primary": f"postgres://postgres@127.0.0.1:{ports[0]}/postgres",
            "replica": f"postgres://postgres@127.0.0.1:{ports[1]}/postgres",
            "stop_replica": _as_postgres([f"{bindir}/pg_ctl", "-D", secondary, "-w", "-m", "fast", "stop"]),
        }
    finally:
        for data in reversed(started):
            subprocess.run(
                _as_postgres([f"{bindir}/pg_ctl", "-D", data, "-w", "-m", "immediate", "stop"]), capture_output=True
            )
        shutil.rmtree(root, ignore_errors=True)


def test_report_reads_reach_the_replica_and_the_primary_when_it_lags_or_stops(streaming_pair):
    env = {
        **os.environ,
        "DATABASE_URL": streaming_pair["primary"],
        "DATABASE_REPLICA_URL": streaming_pair["replica"],
        "REPLICA_STOP_COMMAND": json.dumps(streaming_pair["stop_replica"]),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "",
        "CACHE_URL": "locmemcache://",
        "REPLICA_CHECK_SECONDS": "0",
        "STATIC_MANIFEST": "0",
    }
    done = subprocess.run([sys.executable, str(PROBE)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    up, lagging, stopped = result["up"], result["lagging"], result["stopped"]
    for run in (up, lagging, stopped):
        assert run["statuses"] == [200] * 5
        events = run["graphql"]["data"]["custom_events_report"]["events"]
        assert [(e["slug"], e["fires"], e["unique_contacts"]) for e in events] == [("requested-demo", 60, 20)]
        assert run["occurrence_lines"] == 61  # the header and every occurrence, streamed
    # Up: every report statement reached the replica, none the primary.
    assert up["replica"] > 0 and up["primary"] == 0
    # Lagging, then stopped: skipped, the primary answers.
    assert lagging["replica"] == 0 and lagging["primary"] > 0
    assert stopped["replica"] == 0 and stopped["primary"] > 0
    assert stopped["seconds"] < 10


# --- The router and the health check, without a replica (SQLite and PostgreSQL) ---------------------------------


def test_only_report_tables_read_inside_a_report_go_to_the_replica():
    from custom_events.models import CustomEvent
    from paminga.replica import ReplicaRouter, report_reads
    from tracking.models import EventRecord

    router = ReplicaRouter()
    assert router.db_for_read(EventRecord) is None  # outside a report: the primary
    with report_reads("replica"):
        assert router.db_for_read(EventRecord) == "replica"
        assert router.db_for_read(CustomEvent) is None  # definitions: the primary (a deleted one is gone at once)
        assert router.db_for_write(EventRecord) == "default"
    with report_reads("default"):
        assert router.db_for_read(EventRecord) is None
    assert router.allow_migrate("replica", "tracking") is False and router.allow_migrate("default", "tracking")


def test_a_replica_lagging_or_down_is_skipped_and_checked_at_most_every_few_seconds(monkeypatch, settings):
    from django.db import OperationalError

    from paminga import replica

    settings.REPLICA_CHECK_SECONDS = 60
    settings.REPLICA_MAX_LAG_SECONDS = 5
    monkeypatch.setattr(replica, "replica_configured", lambda: True)
    closed = []
    fake = type("Connection", (), {"close": lambda self: closed.append(1)})()
    monkeypatch.setattr(replica, "connections", {"replica": fake})
    lags = iter([0.5, 12.0])
    checks = []

    def lag():
        checks.append(1)
        value = next(lags, None)
        if value is None:
            raise OperationalError("connection refused")
        return value

    monkeypatch.setattr(replica, "replica_lag_seconds", lag)
    replica.replica_state_forget()
    assert (replica.report_database(), replica.report_database(), len(checks)) == ("replica", "replica", 1)
    replica.replica_state_forget()
    assert (replica.report_database(), len(checks)) == ("default", 2)  # 12 s behind
    replica.replica_state_forget()
    assert (replica.report_database(), len(checks), len(closed)) == ("default", 3, 1)  # down: reconnect next time
    replica.replica_state_forget()
