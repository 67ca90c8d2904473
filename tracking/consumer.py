"""The ingester's consumer loop: reads batches from the queue's shards, records them (tracking.ingest), acknowledges.

Each consumer holds leases on a fair share of the shards (ceil(shards / live consumers)), renewed between batches, so
one consumer at a time reads a shard, in order. More consumers split the shards between them; a consumer that stops
lets its leases lapse and the others take its shards over within INGEST_LEASE_SECONDS.

Crash safety: an entry is acknowledged (and deleted from its stream) only after the transaction that recorded it
committed. A consumer that takes over a shard first claims every entry another consumer read and did not acknowledge
(XAUTOCLAIM) and records those before anything newer; an entry recorded before its consumer died is then a duplicate
of itself and writes nothing (tracking.ingest: every item has a unique key).

Outages: with the database down the batch is left unacknowledged and tried again after a pause that grows to 5 s;
with Redis down the loop waits for it. Neither ends the process. An item that fails on its own for another reason (a
bug) is moved to a dead-letter stream, logged, and acknowledged, so one bad item cannot stop a shard.
"""

import logging
import math
import os
import socket
import time
import uuid

import redis
from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, close_old_connections, connection
from redis.exceptions import RedisClusterException

from . import queue
from .ingest import ingest
from .items import item_loads

logger = logging.getLogger(__name__)

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class LeaseLost(Exception):
    """This consumer no longer holds a shard whose entries it is recording."""


def _transient(exc: BaseException) -> bool:
    """Whether a database error means "cannot do it now" (unreachable, restarting, a missing table before migrations,
    a deadlock), which waiting cures, rather than "this item is wrong" (its data), which it does not. Good data is
    never dead-lettered for the first kind."""
    return isinstance(exc, DatabaseError) and not isinstance(exc, DataError | IntegrityError)


PROGRESS_SECONDS = 5.0


class Consumer:
    def __init__(self, *, name: str | None = None, batch_size: int | None = None, wait_ms: int | None = None):
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.batch_size = batch_size or settings.INGEST_BATCH_SIZE
        self.wait_ms = settings.INGEST_BATCH_WAIT_MS if wait_ms is None else wait_ms
        self.lease_ms = int(settings.INGEST_LEASE_SECONDS * 1000)
        self.owned: set[int] = set()
        # Shards whose entries this consumer holds unacknowledged (claimed, or left by a failed batch), with how far
        # this batch has read its pending list: read from there, before anything new.
        self.replay: dict[int, str] = {}
        self.turn = 0  # the shard a read starts with, moved on every batch so that no shard waits behind another
        self.renewed_at = 0.0
        self.failures = 0
        self.recorded = 0

    # --- Leases ---------------------------------------------------------------------------------------------------

    def leases_refresh(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self.renewed_at < settings.INGEST_LEASE_SECONDS / 3:
            return
        r = queue.client()
        now_ms = int(time.time() * 1000)
        r.zadd(queue.CONSUMERS_KEY, {self.name: now_ms})
        r.zremrangebyscore(queue.CONSUMERS_KEY, 0, now_ms - self.lease_ms)
        live = max(1, r.zcard(queue.CONSUMERS_KEY))
        share = math.ceil(queue.shard_count() / live)
        for shard in sorted(self.owned):
            if not r.eval(_RENEW, 1, queue.lease_key(shard), self.name, self.lease_ms):
                logger.warning("Lost the lease of shard %s", shard)
                self.owned.discard(shard)
                self.replay.pop(shard, None)
        for shard in sorted(self.owned, reverse=True)[: max(0, len(self.owned) - share)]:
            self._release(shard)
        for shard in range(queue.shard_count()):
            if len(self.owned) >= share:
                break
            if shard not in self.owned and r.set(queue.lease_key(shard), self.name, nx=True, px=self.lease_ms):
                self._take_over(shard)
        self.renewed_at = time.monotonic()

    def _take_over(self, shard: int) -> None:
        r, key = queue.client(), queue.stream_key(shard)
        try:
            r.xgroup_create(key, queue.GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        # The lease says no one else reads this shard now: whatever another consumer read and did not acknowledge is
        # this consumer's to record, before anything newer.
        start = "0-0"
        while True:
            start, _, _ = r.xautoclaim(key, queue.GROUP, self.name, min_idle_time=0, start_id=start, count=1000)[:3]
            if start in ("0-0", b"0-0"):
                break
        self.owned.add(shard)
        self.replay[shard] = "0"
        logger.info("Consumer %s reads shard %s", self.name, shard)

    def _release(self, shard: int) -> None:
        queue.client().eval(_RELEASE, 1, queue.lease_key(shard), self.name)
        self.owned.discard(shard)
        self.replay.pop(shard, None)

    def release_all(self) -> None:
        for shard in list(self.owned):
            self._release(shard)
        queue.client().zrem(queue.CONSUMERS_KEY, self.name)

    # --- Reading and recording --------------------------------------------------------------------------------------

    def _read(self) -> list[tuple[int, str, str]]:
        """Up to batch_size entries, (shard, entry id, raw item): a replaying shard's own pending ones first (from
        where this batch's reading of them got to), then new ones, waiting up to wait_ms for the batch to fill."""
        r = queue.client()
        entries: list[tuple[int, str, str]] = []
        deadline = time.monotonic() + self.wait_ms / 1000
        shards = sorted(self.owned)
        self.turn += 1
        shards = shards[self.turn % len(shards) :] + shards[: self.turn % len(shards)] if shards else shards
        cursors = dict(self.replay)
        while True:
            for shard in shards:
                room = self.batch_size - len(entries)
                if room <= 0:
                    return entries
                start = cursors.get(shard, ">")
                reply = r.xreadgroup(queue.GROUP, self.name, {queue.stream_key(shard): start}, count=room)
                # A pending entry deleted since comes back without its fields: "" (acknowledged as it goes).
                got = [
                    (shard, entry_id, (fields or {}).get(queue.FIELD, ""))
                    for _, rows in reply
                    for entry_id, fields in rows
                ]
                if shard in cursors:
                    # Pending entries come back from where the read starts, whatever this batch already holds: the
                    # next read starts after the last one, and once none is left, new entries follow.
                    if got:
                        cursors[shard] = got[-1][1]
                    else:
                        del cursors[shard]
                        self.replay.pop(shard, None)
                entries.extend(got)
            remaining = deadline - time.monotonic()
            if len(entries) >= self.batch_size or remaining <= 0:
                return entries
            # New entries arrive continuously under load; when idle, poll gently (and without any shard, wait for
            # the next lease refresh rather than spin).
            time.sleep(min(remaining, 0.005 if entries else 0.02))

    def step(self) -> int:
        """One batch: read, record, acknowledge. Returns how many entries it acknowledged."""
        self.leases_refresh()
        entries = self._read()
        if not entries:
            return 0
        items, bad, gone = [], [], []
        for shard, entry_id, raw in entries:
            if not raw:
                gone.append((shard, entry_id, raw))
                continue
            try:
                items.append(item_loads(raw, position=(str(shard), entry_id)))
            except ValueError:
                bad.append((shard, entry_id, raw))
        for shard, entry_id, raw in bad:
            self._dead_letter(shard, entry_id, raw, "not a queued item")
        if bad or gone:
            # Done with at once: a batch that waits out a database outage would otherwise dead-letter them again.
            self._ack(bad + gone)
            entries = [entry for entry in entries if entry not in bad and entry not in gone]
        shards = sorted({shard for shard, _, _ in entries})
        try:
            close_old_connections()
            ingest(items, before_commit=lambda: self._still_holding(shards))
        except LeaseLost:
            # Paused past its leases (a long stop of the process): another consumer has these shards and their
            # entries now. Recording them here as well could apply an identification after a newer one.
            logger.warning(
                "Lost the lease of shards %s before committing; leaving their entries to their holder", shards
            )
            self.renewed_at = 0.0
            return 0
        except Exception as exc:  # noqa: BLE001 - one bad item must not stop the shard: find it
            if _transient(exc):
                self._database_down(entries, exc)
                return 0
            logger.exception("A batch of %d items failed; recording them one by one", len(items))
            if not self._one_by_one(items):
                self._database_down(entries, None)
                return 0
        self.failures = 0
        self._ack(entries)
        self.recorded += len(entries)
        return len(entries)

    def _still_holding(self, shards: list[int]) -> None:
        """Raises LeaseLost unless this consumer still holds every one of these shards (fencing: checked last before
        the batch commits)."""
        pipe = queue.client().pipeline(transaction=False)  # GETs, not MGET: the keys live in other cluster slots
        for shard in shards:
            pipe.get(queue.lease_key(shard))
        holders = pipe.execute() if shards else []
        lost = [shard for shard, holder in zip(shards, holders, strict=True) if holder != self.name]
        if lost:
            for shard in lost:
                self.owned.discard(shard)
                self.replay.pop(shard, None)
            raise LeaseLost(lost)

    def _one_by_one(self, items) -> bool:
        for item in items:
            try:
                ingest([item])
            except Exception as exc:  # noqa: BLE001
                if _transient(exc):
                    return False
                logger.exception("Item %s could not be recorded; moved to the dead-letter stream", item.position)
                shard, entry_id = item.position
                from .items import item_dumps

                self._dead_letter(int(shard), entry_id, item_dumps(item), repr(exc)[:500])
        return True

    def _dead_letter(self, shard: int, entry_id: str, raw: str, error: str) -> None:
        queue.client().xadd(
            queue.DEAD_LETTER_KEY, {"shard": shard, "entry": entry_id, queue.FIELD: raw, "error": error}
        )

    def _database_down(self, entries, exc: BaseException | None) -> None:
        self.failures += 1
        pause = min(5.0, 0.2 * 2**self.failures)
        logger.warning(
            "The database cannot record now (%s); %d items wait, trying again in %.1fs", exc, len(entries), pause
        )
        connection.close()
        # The entries stay pending to this consumer: read them again, in order, before anything new.
        for shard in {shard for shard, _, _ in entries}:
            self.replay[shard] = "0"
        time.sleep(pause)

    def _ack(self, entries) -> None:
        by_shard: dict[int, list[str]] = {}
        for shard, entry_id, _ in entries:
            by_shard.setdefault(shard, []).append(entry_id)
        pipe = queue.client().pipeline(transaction=False)
        for shard, ids in by_shard.items():
            key = queue.stream_key(shard)
            pipe.xack(key, queue.GROUP, *ids)
            # Recorded items leave the stream, so its length is the backlog (and the depth limit measures that).
            pipe.xdel(key, *ids)
        pipe.execute()

    def run(self, *, stop=None, until_idle: bool = False, max_seconds: float | None = None, progress=None) -> None:
        """Loops until `stop` (a threading.Event) is set, the queue is empty (`until_idle`), or max_seconds pass.
        Redis errors pause the loop; they do not end it. `progress(recorded, waiting, rate)` is called every few
        seconds (a catch-up run shows how far it is)."""
        started = reported = time.monotonic()
        while not (stop is not None and stop.is_set()):
            if progress is not None and time.monotonic() - reported >= PROGRESS_SECONDS:
                reported = time.monotonic()
                try:
                    waiting = sum(s.waiting for s in queue.queue_status())
                except redis.RedisError:
                    waiting = 0
                progress(self.recorded, waiting, self.recorded / max(1e-9, reported - started))
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                break
            try:
                done = self.step()
            except (redis.RedisError, RedisClusterException):
                logger.warning("The ingest queue cannot be reached; waiting for it", exc_info=True)
                queue.client_reset_soft()
                # The leases may still be this consumer's: renewed (or lost) at the next refresh, not dropped now, so
                # its shards do not stall for a lease period. What it read and did not acknowledge is read again.
                self.renewed_at = 0.0
                self.replay = dict.fromkeys(self.owned, "0")
                time.sleep(1.0)
                continue
            if until_idle and not done and not self.replay and self._idle():
                break
        try:
            self.release_all()
        except redis.RedisError:
            pass

    def _idle(self) -> bool:
        return all(s.waiting == 0 for s in queue.queue_status())
