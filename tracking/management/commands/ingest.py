"""`manage.py ingest`: the ingester, a long-running consumer of the ingest queue (docs/tracking.md).

Run one per machine or more (each takes a fair share of the shards); `--status` prints the queue's state as JSON.
"""

import json
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tracking import queue
from tracking.consumer import Consumer


class Command(BaseCommand):
    help = "Records the hits and API events waiting in the ingest queue, in batches, until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--status", action="store_true", help="Print each shard's backlog as JSON and exit.")
        parser.add_argument(
            "--until-idle", action="store_true", help="Exit once every shard is empty (a catch-up run)."
        )
        parser.add_argument("--batch-size", type=int, default=None, help="Items per batch (INGEST_BATCH_SIZE).")
        parser.add_argument("--name", default=None, help="This consumer's name (default: host, pid and a suffix).")

    def handle(self, *args, status=False, until_idle=False, batch_size=None, name=None, **options):
        if not queue.queue_enabled():
            raise CommandError("INGEST_QUEUE_URL is not set: capture records every hit inline, nothing is queued.")
        if status:
            self._status()
            return
        consumer = Consumer(name=name, batch_size=batch_size)
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Finish the batch in hand, acknowledge it, hand the shards back, exit.
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"Ingesting as {consumer.name} ({settings.INGEST_SHARDS} shards)")
        consumer.run(stop=stop, until_idle=until_idle, progress=self._progress if until_idle else None)
        self.stdout.write(f"Stopped after recording {consumer.recorded:,} items")

    def _progress(self, recorded: int, waiting: int, rate: float) -> None:
        left = f", about {waiting / rate:,.0f} s left" if rate > 0 else ""
        self.stdout.write(f"{recorded:,} recorded, {waiting:,} waiting, {rate:,.0f}/s{left}")

    def _status(self) -> None:
        shards = queue.queue_status()
        consumers = queue.client().zrange(queue.CONSUMERS_KEY, 0, -1)
        print(
            json.dumps(
                {
                    "shards": [
                        {
                            "shard": s.shard,
                            "waiting": s.waiting,
                            "pending": s.pending,
                            "oldest_age_seconds": s.oldest_age_seconds,
                            "consumer": s.owner,
                        }
                        for s in shards
                    ],
                    "consumers": consumers,
                    "dead_letters": queue.client().xlen(queue.DEAD_LETTER_KEY),
                },
                indent=2,
            )
        )
