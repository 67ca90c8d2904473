"""Gating for tests that need real services (Redis, a Celery worker, PostgreSQL): they skip with a clear reason
when the service is missing, unless REQUIRE_SERVICES=1 (as in CI), where a missing service is a failure."""

import os
from typing import NoReturn

import pytest
from django.db import connection


def service_missing(reason: str) -> NoReturn:
    """Skips the test with the reason; under REQUIRE_SERVICES=1 (as in CI) fails it instead."""
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but this test {reason}")
    pytest.skip(reason)


def require_services(*, redis: bool = False, postgresql: bool = False) -> str:
    """Returns REDIS_URL when redis is asked for."""
    missing = []
    redis_url = os.environ.get("REDIS_URL", "")
    if redis:
        if not redis_url:
            missing.append("REDIS_URL is not set (e.g. REDIS_URL=redis://127.0.0.1:6379/14)")
        else:
            import redis as redis_client

            try:
                redis_client.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
            except Exception as exc:  # noqa: BLE001 - any failure means the service is not usable
                missing.append(f"Redis at {redis_url} is unreachable ({exc})")
    if postgresql and connection.vendor != "postgresql":
        missing.append("the database is not PostgreSQL (set DATABASE_URL=postgres://...)")
    if missing:
        service_missing("needs " + "; ".join(missing))
    return redis_url


def require_programs(*names: str, hint: str = "") -> list[str]:
    """The paths of these programs (on the PATH or in /usr/sbin); skips with the reason when one is missing, unless
    REQUIRE_SERVICES=1 (as in CI), where that is a failure."""
    import shutil

    found = [shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin") for name in names]
    missing = [name for name, path in zip(names, found, strict=True) if path is None]
    if missing:
        service_missing(f"needs {', '.join(missing)} on the PATH" + (f" ({hint})" if hint else ""))
    return found


def celery_use_broker(url: str | None):
    """Points the project's Celery app at another broker (None: back to in-process tasks). Returns a function
    that restores the previous configuration. Connection pools are dropped so the next publish uses `url`."""
    from paminga.celery import app

    saved = (app.conf.broker_url, app.conf.task_always_eager)

    def reset_pools():
        from kombu import pools

        pools.reset()  # closes and forgets every cached connection and producer pool
        app._pool = None
        app.amqp._producer_pool = None

    reset_pools()
    if url is None:
        app.conf.task_always_eager = True
    else:
        app.conf.broker_url, app.conf.task_always_eager = url, False

    def restore():
        reset_pools()
        app.conf.broker_url, app.conf.task_always_eager = saved

    return restore


def free_port() -> int:
    """A loopback port nothing listens on (the system's pick, released): for a server of the test's own, or as a
    closed port."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
