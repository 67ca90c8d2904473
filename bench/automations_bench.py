"""Automations benchmark: a real Celery worker (2 prefork processes) on Redis and PostgreSQL.

Measures, in one run:
  - baseline: a no-op Celery task (the broker and the worker alone): completed per second while the worker drains
    a backlog, and enqueue → done latency with tasks paced so nothing queues;
  - actions completed per second while the worker drains the runs of events that have two database actions
    (add a tag, change the score), recorded through tracking.services.event_record (the beacon's and the API's
    write path);
  - event recorded (committed) → action finished latency, p50 / p95, with events paced so nothing queues;
  - the recording cost on the hot path, with no worker running: events/s through event_record for an event
    without actions vs one with two actions (the run rows and the broker publishes are what actions add);
and prints each figure with its ratio to its baseline.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/paminga_automations REDIS_URL=redis://127.0.0.1:6379/3 \\
        .venv/bin/python bench/automations_bench.py [--events 1000] [--paced 200] [--rate 25]

The database is migrated and a `bench-automations` account is (re)created in it; the Redis database is purged.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/paminga_automations")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/3")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000, help="events recorded back to back (throughput)")
    parser.add_argument("--paced", type=int, default=200, help="events recorded one at a time (latency)")
    parser.add_argument("--rate", type=float, default=25.0, help="events per second in the latency phase")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    args = parser.parse_args()

    import django

    django.setup()
    import redis
    from automations_worker import noop
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction

    from automations.models import ActionRun
    from automations.services import action_create
    from custom_events.services import custom_event_create
    from paminga.models import Account
    from paminga.services import account_create
    from tracking.ingest import event_record
    from tracking.models import Contact

    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL:
        raise SystemExit("Run with DATABASE_URL=postgres://... and REDIS_URL=redis://... (see the docstring).")
    call_command("migrate", verbosity=0)
    Account.objects.filter(slug="bench-automations").delete()
    account = account_create(name="Automations benchmark", slug="bench-automations")
    with_actions = custom_event_create(account=account, name="Requested Demo", slug="requested-demo")
    without_actions = custom_event_create(account=account, name="Scrolled", slug="scrolled")
    action_create(custom_event=with_actions, kind="add_tag", config={"tag": "demo"})
    action_create(custom_event=with_actions, kind="change_score", config={"delta": 1})
    actions_per_event = 2
    contacts = [Contact.objects.create(account=account, email=f"c{i}@bench.test") for i in range(50)]
    r = redis.Redis.from_url(os.environ["REDIS_URL"])
    r.flushdb()

    def start_worker():
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "automations_worker", "worker", "-c", str(args.concurrency),
             "-P", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"},
        )  # fmt: skip

    def stop(worker):
        worker.terminate()
        worker.wait(60)

    def fire(event, contact):
        with transaction.atomic():
            record, _ = event_record(account=account, custom_event=event, contact=contact, source="api")
        return record, time.time()

    def drain_rate(finish_times: list[float]) -> float:
        """Completions per second while the worker drains a backlog: first to last completion."""
        return (len(finish_times) - 1) / (max(finish_times) - min(finish_times))

    n = args.events * actions_per_event
    runs = ActionRun.objects.filter(account=account)

    # 1. Baseline throughput: a backlog of n no-op tasks, drained by the worker.
    for i in range(n):
        noop.delay(i)
    worker = start_worker()
    try:
        wait_until(lambda: r.hlen("bench:noop") >= n, 600, "no-op tasks")
    finally:
        stop(worker)
    noop_rate = drain_rate([float(v) for v in r.hvals("bench:noop")])
    r.delete("bench:noop")

    # 2. The hot path, with no worker running: recording an event without actions vs with two actions (the run
    #    rows and the broker publishes are what actions add). The events with actions become the backlog of 3.
    def record_rate(event, count):
        start = time.perf_counter()
        for i in range(count):
            fire(event, contacts[i % len(contacts)])
        return count / (time.perf_counter() - start)

    plain_rate = record_rate(without_actions, args.events)
    actions_record_rate = record_rate(with_actions, args.events)

    # 3. Actions throughput: the backlog of 2 × events action runs from 2., drained by the worker.
    worker = start_worker()
    try:
        wait_until(lambda: runs.filter(status="succeeded").count() >= n, 900, "action runs")
        failed = runs.exclude(status="succeeded").count()
        actions_rate = drain_rate([t.timestamp() for t in runs.values_list("finished_at", flat=True)])

        # 4. Latency, the worker idle and waiting: paced no-op tasks, then paced events.
        runs.delete()
        sent = {}
        for i in range(args.paced):
            sent[i] = time.time()
            noop.delay(i)
            time.sleep(1 / args.rate)
        wait_until(lambda: r.hlen("bench:noop") >= args.paced, 60, "paced no-op tasks")
        noop_latency = [(float(r.hget("bench:noop", i)) - sent[i]) * 1000 for i in range(args.paced)]

        committed = {}
        for i in range(args.paced):
            record, at = fire(with_actions, contacts[i % len(contacts)])
            committed[record.pk] = at
            time.sleep(1 / args.rate)
        wait_until(lambda: runs.filter(status="succeeded").count() >= args.paced * actions_per_event, 120, "paced runs")
        latency = [
            (finished.timestamp() - committed[record_id]) * 1000
            for record_id, finished in runs.values_list("event_record_id", "finished_at")
        ]
    finally:
        stop(worker)

    def line(label, value, unit, baseline=None, ratio_label=""):
        ratio = f"   {value / baseline:5.2f}× {ratio_label}" if baseline else ""
        print(f"  {label:<52} {value:10.1f} {unit:<10}{ratio}")

    print(f"\nAutomations benchmark — worker: {args.concurrency} prefork processes; broker: Redis; database: "
          f"PostgreSQL; {os.cpu_count()} CPUs on this machine")  # fmt: skip
    print(f"  throughput phase: {args.events} events × {actions_per_event} actions; latency phase: {args.paced} "
          f"events at {args.rate:g}/s\n")  # fmt: skip
    print("Baseline (no-op Celery task, same broker and worker)")
    line("no-op tasks completed per second", noop_rate, "tasks/s")
    line("no-op enqueue → done latency p50", statistics.median(noop_latency), "ms")
    line("no-op enqueue → done latency p95", percentile(noop_latency, 95), "ms")
    print("Actions (add tag + change score per event)")
    line("actions completed per second", actions_rate, "actions/s", noop_rate, "of the no-op rate")
    line("event recorded → action finished latency p50", statistics.median(latency), "ms",
         statistics.median(noop_latency), "the no-op p50")  # fmt: skip
    line("event recorded → action finished latency p95", percentile(latency, 95), "ms",
         percentile(noop_latency, 95), "the no-op p95")  # fmt: skip
    line("runs not succeeded", failed, "runs")
    print("Recording (tracking.services.event_record, one transaction per event)")
    line("events/s, event without actions (baseline)", plain_rate, "events/s")
    line("events/s, event with 2 actions (runs + publish)", actions_record_rate, "events/s", plain_rate,
         "the rate without actions")  # fmt: skip


if __name__ == "__main__":
    main()
