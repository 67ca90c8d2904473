"""The Celery app the automations benchmark's worker runs: the project's own app, plus a no-op task that is the
baseline (a bare Celery round trip through the same Redis broker, recording when it ran)."""

import os
import time

import redis

from paminga.celery import app

_redis = None


@app.task(name="bench.noop", ignore_result=True)
def noop(index: int) -> None:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ["REDIS_URL"])
    _redis.hset("bench:noop", index, repr(time.time()))


__all__ = ["app", "noop"]
