"""The durable queue between capture and the ingester: one Redis Stream per shard.

Capture appends each accepted item to the stream of its shard, chosen by a hash of the visitor (or, for an API event
without one, the contact's email), so that every item of one visitor or contact waits in one stream, in order. The
ingester (`manage.py ingest`, tracking.consumer) holds a lease on each shard it reads, so one consumer at a time reads
a shard, and reads it in order.

Keys carry a hash tag per shard (`paminga:ingest:{3}`), so in a Redis Cluster each shard's stream and lease live on
one node and the shards spread over the nodes. INGEST_QUEUE_URL may name a plain Redis or any node of a cluster; the
mode is detected on connection.

Durability is the Redis server's: run it with `appendonly yes` and `appendfsync always` (docker-compose does) so an
accepted item survives a crash of the server (docs/tracking.md measures that against `everysec`).
"""

import logging
import time
import zlib
from dataclasses import dataclass

import redis
from django.conf import settings
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from .items import Item, item_dumps

logger = logging.getLogger(__name__)

GROUP = "ingest"
FIELD = "i"

_client: redis.Redis | RedisCluster | None = None
_client_url = ""
# Until when (time.monotonic()) capture goes straight to inline ingestion after the queue failed, and until when it
# refuses because the queue is over its depth limit.
_down_until = 0.0
_full_until = 0.0
# When this process next asks for the depth of the streams it appends to (once per DEPTH_CHECK_SECONDS: a hit then
# costs one round trip and one reply).
_depth_check_at = 0.0
DEPTH_CHECK_SECONDS = 0.25


class QueueUnavailable(Exception):
    """The queue cannot be reached: capture ingests inline instead."""


class QueueFull(Exception):
    """The queue is deeper than INGEST_QUEUE_MAX_DEPTH: capture answers 503 with Retry-After."""


def queue_enabled() -> bool:
    return bool(settings.INGEST_QUEUE_URL)


def client() -> redis.Redis | RedisCluster:
    """The queue's Redis client (a RedisCluster when the server is a cluster node), made once per process."""
    global _client, _client_url
    url = settings.INGEST_QUEUE_URL
    if _client is not None and _client_url == url:
        return _client
    options = {
        "socket_timeout": settings.INGEST_QUEUE_TIMEOUT_SECONDS,
        "socket_connect_timeout": settings.INGEST_QUEUE_TIMEOUT_SECONDS,
        "decode_responses": True,
    }
    plain = redis.Redis.from_url(url, health_check_interval=30, **options)
    # Raises when the server cannot be reached: nothing is kept, and the next call asks again.
    cluster = bool(plain.info("cluster").get("cluster_enabled"))
    if cluster:
        plain.close()
        _client = RedisCluster.from_url(url, **options)
    else:
        _client = plain
    _client_url = url
    return _client


def client_reset() -> None:
    """Forgets the client (tests that start and stop servers; a process after fork)."""
    global _client, _client_url, _down_until, _full_until
    if _client is not None:
        try:
            _client.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass
    global _depth_check_at
    _client, _client_url, _down_until, _full_until, _depth_check_at = None, "", 0.0, 0.0, 0.0


def is_cluster() -> bool:
    return isinstance(client(), RedisCluster)


def shard_count() -> int:
    return settings.INGEST_SHARDS


def shard_of(order_key: str) -> int:
    return zlib.crc32(order_key.encode("utf-8", "surrogatepass")) % shard_count()


def stream_key(shard: int) -> str:
    return f"paminga:ingest:{{{shard}}}"


def lease_key(shard: int) -> str:
    return f"paminga:ingest:{{{shard}}}:lease"


CONSUMERS_KEY = "paminga:ingest:consumers"
DEAD_LETTER_KEY = "paminga:ingest:dead"


def queue_append(items: list[Item]) -> None:
    """Appends the items to their shards' streams in one round trip. Raises QueueUnavailable (nothing may have been
    appended: the caller ingests the items inline, and an item that did reach the queue is then recorded once, by its
    key) or QueueFull (the items were appended; later ones are refused for a moment)."""
    global _down_until, _full_until
    now = time.monotonic()
    if now < _down_until:
        raise QueueUnavailable("the queue failed moments ago")
    if now < _full_until:
        raise QueueFull(f"over {settings.INGEST_QUEUE_MAX_DEPTH:,} items waiting")
    global _depth_check_at
    check_depth = now >= _depth_check_at
    try:
        keys = [stream_key(shard_of(item.order_key)) for item in items]
        if len(items) == 1 and not check_depth:
            # The common case, a beacon hit: one command, without a pipeline's own cost.
            replies = [client().xadd(keys[0], {FIELD: item_dumps(items[0])})]
        else:
            pipe = client().pipeline(transaction=False)
            for key, item in zip(keys, items, strict=True):
                pipe.xadd(key, {FIELD: item_dumps(item)})
            if check_depth:
                # Every shard's length: the limit is on what waits in the whole queue.
                for shard in range(shard_count()):
                    pipe.xlen(stream_key(shard))
            replies = pipe.execute()
    except (redis.RedisError, RedisClusterException) as exc:
        _down_until = time.monotonic() + settings.INGEST_QUEUE_RETRY_SECONDS
        client_reset_soft()
        logger.warning(
            "The ingest queue cannot be reached; ingesting inline for %ss", settings.INGEST_QUEUE_RETRY_SECONDS
        )
        raise QueueUnavailable(str(exc)) from exc
    if check_depth:
        _depth_check_at = now + DEPTH_CHECK_SECONDS
        if sum(replies[len(items) :]) > settings.INGEST_QUEUE_MAX_DEPTH:
            # Refuse for a moment rather than ask Redis on every request: the ingester drains meanwhile.
            _full_until = time.monotonic() + 1.0


def client_reset_soft() -> None:
    """Drops the client after an error, keeping the back-off, so the next attempt connects (and detects) again."""
    global _client, _client_url
    _client, _client_url = None, ""


@dataclass
class ShardStatus:
    shard: int
    waiting: int  # entries in the stream: not yet recorded, or recorded and not yet acknowledged
    pending: int  # read by a consumer, not acknowledged yet
    oldest_age_seconds: float | None
    owner: str | None


def queue_status() -> list[ShardStatus]:
    """Per shard: how many items wait, how many a consumer holds, the age of the oldest one and the lease holder."""
    r = client()
    now_ms = time.time() * 1000
    statuses = []
    for shard in range(shard_count()):
        key = stream_key(shard)
        waiting = r.xlen(key)
        pending = 0
        oldest = None
        if waiting:
            try:
                pending = r.xpending(key, GROUP)["pending"]
            except redis.ResponseError:  # no consumer group yet: nothing was read
                pending = 0
            first = r.xrange(key, count=1)
            if first:
                oldest = max(0.0, (now_ms - int(first[0][0].split("-")[0])) / 1000)
        statuses.append(
            ShardStatus(
                shard=shard, waiting=waiting, pending=pending, oldest_age_seconds=oldest, owner=r.get(lease_key(shard))
            )
        )
    return statuses


def queue_lag() -> dict:
    """{"waiting": items, "oldest_age_seconds": ...} over every shard (for /healthz and the event debugger)."""
    statuses = queue_status()
    ages = [s.oldest_age_seconds for s in statuses if s.oldest_age_seconds is not None]
    return {"waiting": sum(s.waiting for s in statuses), "oldest_age_seconds": round(max(ages), 3) if ages else 0.0}
