#!/usr/bin/env python
"""Benchmark of the ingester behind the durable queue, on PostgreSQL and a private redis-server.

    .venv/bin/python bench/ingest_bench.py                     # about three minutes
    .venv/bin/python bench/ingest_bench.py --items 50000 --burst-seconds 60 --latency-seconds 30

Three measurements, each checked against the database afterwards (every accepted item stored exactly once):

1. The ingester alone: the queue is filled with realistic hits (impressions and custom events of many visitors, as
   bench/collect.lua sends them), then one `manage.py ingest --until-idle` process records them. Printed: items/s.
2. Latency at half the ingester's rate, with a Celery worker running an action (add a tag) on one of the events:
   event received (capture) → recorded (its row's created_at), and → action run finished, p50 and p95.
3. A burst: items are accepted at three times that rate (or as fast as this process can queue them) for
   --burst-seconds while the ingester runs; printed: the peak queue depth and the time to drain after the burst.

The items are accepted through tracking.capture.capture(), the function the collect endpoint and the API call, in
this process (no HTTP: bench/collect_bench.py measures the endpoints). The database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/paminga_ingest_bench) is created, and dropped at the end.
"""

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import database_create, database_drop, free_port  # noqa: E402

SLUGS = ("watched-product-video", "visited-pricing-page", "requested-demo", "downloaded-whitepaper-q1")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/paminga_ingest_bench"),
    )
    parser.add_argument("--items", type=int, default=40000, help="items for the ingester-alone run")
    parser.add_argument("--visitors", type=int, default=5000)
    parser.add_argument("--burst-seconds", type=int, default=60)
    parser.add_argument("--latency-seconds", type=int, default=30)
    parser.add_argument("--fsync", default="always", choices=["always", "everysec"])
    parser.add_argument("--keep-database", action="store_true")
    return parser.parse_args()


def start_redis(fsync: str) -> tuple[subprocess.Popen, str]:
    import redis

    port = free_port()
    directory = tempfile.mkdtemp(prefix="ingest-bench-redis-")
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory]
    command += ["--appendonly", "yes", "--appendfsync", fsync]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    process.directory = directory  # its append-only file: removed with the server (stop_redis)
    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            return process, f"redis://127.0.0.1:{port}"
        except redis.RedisError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def django_setup(args, queue_url: str):
    database_create(args.database_url)
    os.environ.update(
        DATABASE_URL=args.database_url,
        DEBUG="0",
        SECRET_KEY="bench",
        LOG_LEVEL="WARNING",
        INGEST_QUEUE_URL=queue_url + "/0",
        REDIS_URL=queue_url + "/1",
        CELERY_BROKER_URL=queue_url + "/1",
        DJANGO_SETTINGS_MODULE="paminga.settings",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("flush", verbosity=0, interactive=False)
    from automations.services import action_create
    from custom_events.services import custom_event_create
    from paminga.services import account_create

    account = account_create(name="Bench", slug="bench", domains=["www.bench.test"])
    for i, slug in enumerate(SLUGS):
        event = custom_event_create(account=account, name=slug.title(), slug=slug, counts_as_conversion=i == 2)
        if slug == "requested-demo":
            action_create(custom_event=event, kind="add_tag", config={"tag": "demo"})
    return account


def hit_items(account, run: str, count: int, visitors: int):
    """Realistic hits, as bench/collect.lua sends them: 60% impressions, 40% custom events with metadata."""
    from tracking.hits import Hit
    from tracking.items import HitItem

    for n in range(count):
        visitor = f"{run}-v{random.randint(1, visitors):06d}"
        page = f"https://www.bench.test/page/{random.randint(1, 50)}"
        if random.random() < 0.6:
            hit = Hit(type="impression", id=f"{run}-{n:08d}", visitor=visitor, url=page, title="Bench page")
        else:
            metadata = {"planTier": "enterprise", "n": n}
            hit = Hit(type="event", id=f"{run}-{n:08d}", visitor=visitor, url=page, slug=random.choice(SLUGS))
            hit.metadata = metadata
        yield HitItem(account_id=account.pk, received_at=datetime.now(UTC), hit=hit)


def accept(account, items) -> int:
    from tracking.capture import capture

    outcomes = capture(account=account, items=items)
    assert all(o.status == "accepted" for o in outcomes), outcomes
    return len(outcomes)


def ingester(args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "ingest"], cwd=ROOT, env=env)


def celery_worker() -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "celery", "-A", "paminga", "worker", "--concurrency", "2", "--loglevel", "WARNING"]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def waiting() -> int:
    from tracking import queue

    return sum(s.waiting for s in queue.queue_status())


def stored(account, run: str) -> tuple[int, int]:
    from tracking.models import RecordedKey

    impressions = RecordedKey.objects.filter(account=account, key__startswith=f"page:{run}-").count()
    events = RecordedKey.objects.filter(account=account, key__startswith=f"beacon:{run}-").count()
    return impressions, events


def run_records(account, run: str):
    """The ids of the events recorded for the run's hits."""
    from tracking.models import RecordedKey

    return RecordedKey.objects.filter(account=account, key__startswith=f"beacon:{run}-").values("record_id")


def check(account, run: str, accepted: int) -> str:
    impressions, events = stored(account, run)
    verdict = "exactly once" if impressions + events == accepted else "MISMATCH"
    return f"accepted {accepted:,}, stored {impressions:,} impressions + {events:,} events: {verdict}"


def alone(args, account) -> float:
    run = "alone"
    accepted = 0
    batch = []
    for item in hit_items(account, run, args.items, args.visitors):
        batch.append(item)
        if len(batch) == 100:
            accepted += accept(account, batch)
            batch = []
    accepted += accept(account, batch)
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "ingest", "--until-idle"], cwd=ROOT, env=env, check=True)
    seconds = time.monotonic() - started
    rate = accepted / seconds
    print(f"\n1. ingester alone: {accepted:,} items in {seconds:.1f} s = {rate:,.0f} items/s (target >= 10,000)")
    print(f"   {check(account, run, accepted)}")
    return rate


def paced(account, run: str, rate: float, seconds: float, visitors: int, on_tick=None) -> int:
    """Accepts items at `rate` per second for `seconds` (in groups of 50 every 50/rate seconds)."""
    group = 50
    interval = group / rate
    accepted, started, n = 0, time.monotonic(), 0
    items = hit_items(account, run, 10**9, visitors)
    while time.monotonic() - started < seconds:
        due = started + n * interval
        if (pause := due - time.monotonic()) > 0:
            time.sleep(pause)
        accepted += accept(account, [next(items) for _ in range(group)])
        n += 1
        if on_tick is not None:
            on_tick()
    return accepted


def burst(args, account, rate: float) -> None:
    run = "burst"
    process = ingester(args)
    peak = [0]
    last_probe = [0.0]

    def probe():
        if time.monotonic() - last_probe[0] > 1:
            last_probe[0] = time.monotonic()
            peak[0] = max(peak[0], waiting())

    try:
        started = time.monotonic()
        accepted = paced(account, run, 3 * rate, args.burst_seconds, args.visitors, probe)
        offered = accepted / (time.monotonic() - started)
        drain_started = time.monotonic()
        while waiting():
            peak[0] = max(peak[0], waiting())
            time.sleep(0.5)
        drain = time.monotonic() - drain_started
    finally:
        stop(process)
    print(
        f"\n3. burst: {accepted:,} items accepted in {args.burst_seconds} s ({offered:,.0f}/s asked: 3 x {rate:,.0f}; "
        f"what this one process could queue), peak queue depth {peak[0]:,}, drained {drain:.1f} s after the burst"
    )
    print(f"   {check(account, run, accepted)}")


def latency(args, account, rate: float) -> None:
    from automations.models import ActionRun
    from tracking.models import EventRecord

    run = "late"
    process, worker = ingester(args), celery_worker()
    try:
        time.sleep(3)  # both ready
        accepted = paced(account, run, rate / 2, args.latency_seconds, args.visitors)
        deadline = time.monotonic() + 60
        runs = ActionRun.objects.filter(event_record_id__in=run_records(account, run))
        while time.monotonic() < deadline and (waiting() or runs.filter(finished_at__isnull=True).exists()):
            time.sleep(0.5)
    finally:
        stop(process)
        stop(worker)
    records = EventRecord.objects.filter(pk__in=run_records(account, run))
    recorded = [(r.created_at - r.occurred_at).total_seconds() for r in records.only("created_at", "occurred_at")]
    finished = [
        (finished_at - occurred_at).total_seconds()
        for finished_at, occurred_at in runs.filter(finished_at__isnull=False).values_list(
            "finished_at", "event_record__occurred_at"
        )
    ]

    def pct(values, q):
        return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")

    print(f"\n2. latency at {rate / 2:,.0f} items/s (half the ingester's rate), {args.latency_seconds} s:")
    print(f"   received -> recorded: p50 {pct(recorded, 50):.3f} s, p95 {pct(recorded, 95):.3f} s (target < 1 s)")
    print(
        f"   received -> action finished: p50 {pct(finished, 50):.3f} s, p95 {pct(finished, 95):.3f} s "
        f"(target < 2 s; {len(finished):,} of {runs.count():,} runs finished)"
    )
    print(f"   {check(account, run, accepted)}")


def stop_redis(process: subprocess.Popen) -> None:
    """Stops the benchmark's redis-server and removes its files."""
    process.terminate()
    process.wait(timeout=30)
    shutil.rmtree(process.directory, ignore_errors=True)


def main():
    args = parse_args()
    redis_process, queue_url = start_redis(args.fsync)
    try:
        account = django_setup(args, queue_url)
        print(
            f"ingest benchmark: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, queue appendfsync "
            f"{args.fsync}, database {args.database_url.rsplit('/', 1)[-1]}"
        )
        rate = alone(args, account)
        # The runs of the events recorded so far were enqueued with no worker running: the latency run starts with
        # an empty broker, so that it measures its own events' actions, not a backlog.
        from paminga.celery import app

        app.control.purge()
        latency(args, account, rate)
        burst(args, account, rate)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (other processes on the machine skew every figure)")
    finally:
        stop_redis(redis_process)
        if not args.keep_database:
            from django.db import connections

            connections.close_all()
            database_drop(args.database_url)


if __name__ == "__main__":
    main()
