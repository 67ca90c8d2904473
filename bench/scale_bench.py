"""Scale: report pages flat whatever the account holds, rollup runs that cost what is new, deletes that answer at
once. On a PostgreSQL database of its own, created and dropped by the script (loopback only):

    .venv/bin/python bench/scale_bench.py                          # 1M events beside 100k and an empty account
    .venv/bin/python bench/scale_bench.py --events 300000 --small 30000 --keep   # smaller; keep the database
    SCALE_BENCH_SERVER=postgres://postgres@127.0.0.1:5432 ...      # the server (default: that one)

Three accounts in America/New_York: an empty one (the baseline), a small and a big one, each written by the
seed_demo_data generator over a year, then rolled up. It measures, through Django's test client (middleware, view,
queries, template), after two warm-up requests:

- the overview and an event report for the last 30 and the last 365 days: median and slowest of ROUNDS, the
  accounts taking turns (load from elsewhere on the machine then falls on all three alike), with queries per page;
- a rollup run after "a few minutes" of new traffic (NEW_EVENTS events written into today), against what a run
  cost before it folded new rows (rebuilding the days they fall on from all their rows);
- the time `delete_custom_event` (GraphQL) takes to answer for the definition owning about a tenth of the big
  account's events, and the background task's duration, with capture and the overview measured while it runs.

Ratios are printed against the empty account and the small one.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = os.environ.get("SCALE_BENCH_SERVER", "postgres://postgres@127.0.0.1:5432").rstrip("/")
DATABASE = f"scale_bench_{os.getpid()}"
ROUNDS = 11
NEW_EVENTS = 300
TIME_ZONE = "America/New_York"


def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="Events of the big account.")
    parser.add_argument("--small", type=int, default=100_000, help="Events of the small account.")
    parser.add_argument("--keep", action="store_true", help="Keep the database (prints its name).")
    args = parser.parse_args()
    host = urlsplit(SERVER).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"Loopback only: {host} is not this machine.")
    admin_sql(f'CREATE DATABASE "{DATABASE}"')
    try:
        os.environ["DATABASE_URL"] = f"{SERVER}/{DATABASE}"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")
        os.environ.setdefault("STATIC_MANIFEST", "0")
        os.environ["CELERY_BROKER_URL"] = ""
        os.environ["REDIS_URL"] = ""
        os.environ.setdefault("SECRET_KEY", "scale-bench")
        os.environ["LOG_LEVEL"] = "ERROR"
        # The bench is one client hammering one site key: no rate limit.
        for limit in ("COLLECT_PER_ADDRESS", "COLLECT_PER_SITE_KEY", "API_CALLS_PER_KEY", "API_FAILURES_PER_ADDRESS"):
            os.environ[f"RATE_LIMIT_{limit}"] = "0"
        import django

        django.setup()
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            print(f"Kept database {DATABASE}")
        else:
            admin_sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def run(args) -> None:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from automations.deletes import background_delete_run
    from automations.reports.seed import demo_definitions_ensure, demo_history_create
    from automations.reports.selectors import report_default_range
    from automations.reports.services import report_days_invalidate, report_rollups_update
    from paminga.services import account_create, api_key_create, membership_create, user_get_or_create
    from tracking.models import EventRecord

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)

    def account_for(slug, events):
        account = account_create(name=slug, slug=slug, time_zone=TIME_ZONE, domains=["bench.example"])
        demo_definitions_ensure(account=account)
        if events:
            started = time.monotonic()
            demo_history_create(account=account, events=events, days=365)
            print(f"  {slug}: {events:,} events written in {time.monotonic() - started:.0f} s", flush=True)
        return account

    print(f"Database {DATABASE}: writing the accounts")
    empty = account_for("bench-empty", 0)
    small = account_for("bench-small", args.small)
    big = account_for("bench-big", args.events)
    started = time.monotonic()
    report_rollups_update(now=timezone.now() + timedelta(minutes=2))
    print(f"  first rollup of the three accounts: {time.monotonic() - started:.0f} s")

    def client_for(account):
        user = user_get_or_create(email=f"bench@{account.slug}.example")
        membership_create(account=account, user=user)
        client = Client()
        client.force_login(user)
        session = client.session
        session["current_account_id"] = account.pk
        session.save()
        return client

    def urls(account):
        event = account.custom_events.get(slug="watched-product-video")
        today = report_default_range(account=account)[1]
        result = {}
        for days in (30, 365):
            span = f"?start={today - timedelta(days=days - 1)}&end={today}"
            result[f"overview, {days} days"] = f"/automations/custom-events/{span}"
            result[f"event report, {days} days"] = f"/automations/custom-events/{event.pk}/report/{span}"
        return result

    def measure(client, url, n=5):
        for _ in range(2):
            assert client.get(url).status_code == 200, url
        times = []
        for _ in range(n):
            t = time.perf_counter()
            assert client.get(url).status_code == 200
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times), max(times)

    print(f"\nReport pages (median / slowest of {ROUNDS}, ms; × = ratio of medians; q = queries per page)")
    sizes = f"{f'{args.small:,} events':>20}{f'{args.events:,} events':>20}"
    print(f"{'page':<24}{'empty':>16}{sizes}{'big ÷ empty':>13}{'big ÷ small':>13}{'q':>8}")
    accounts = [(empty, client_for(empty)), (small, client_for(small)), (big, client_for(big))]
    for name in urls(empty):
        times = {account.slug: [] for account, _client in accounts}
        queries = {}
        for account, client in accounts:  # warm-up
            for _ in range(2):
                assert client.get(urls(account)[name]).status_code == 200
        # Rounds across the three accounts, so that load from elsewhere on the machine falls on all of them alike.
        for _ in range(ROUNDS):
            for account, client in accounts:
                with CaptureQueriesContext(connection) as captured:
                    t = time.perf_counter()
                    assert client.get(urls(account)[name]).status_code == 200
                    times[account.slug].append((time.perf_counter() - t) * 1000)
                queries[account.slug] = len(captured.captured_queries)
        e, s_, b = ((statistics.median(times[a]), max(times[a])) for a in ("bench-empty", "bench-small", "bench-big"))
        q = "/".join(str(queries[a]) for a in ("bench-empty", "bench-small", "bench-big"))
        print(
            f"{name:<24}{e[0]:>8.1f} / {e[1]:>5.0f}{s_[0]:>12.1f} / {s_[1]:>5.0f}{b[0]:>12.1f} / {b[1]:>5.0f}"
            f"{b[0] / e[0]:>12.2f}×{b[0] / s_[0]:>12.2f}×{q:>10}"
        )

    print(f"\nRollup runs ({NEW_EVENTS:,} new events written into today, as a few minutes of busy traffic)")
    for _ in range(2):  # the first also recounts the previous window: the whole first rollup
        started = time.monotonic()
        report_rollups_update(now=timezone.now() + timedelta(minutes=2))
        idle_ms = (time.monotonic() - started) * 1000
    print(f"  a run with nothing new: {idle_ms:.0f} ms")
    for account in (small, big):
        demo_history_create(account=account, events=NEW_EVENTS, days=1, random_seed=2)
        started = time.monotonic()
        folded = report_rollups_update(now=timezone.now() + timedelta(minutes=2))
        fold_ms = (time.monotonic() - started) * 1000
        today = report_default_range(account=account)[1]
        report_days_invalidate(account=account, days=[today, today - timedelta(days=1)])
        started = time.monotonic()
        rebuilt = report_rollups_update(now=timezone.now() + timedelta(minutes=2))
        rebuild_ms = (time.monotonic() - started) * 1000
        print(
            f"  {account.slug}: folding the new rows {fold_ms:.0f} ms ({folded.rows_folded:,} rows, "
            f"{folded.days_rebuilt} days rebuilt); rebuilding today and yesterday from all their rows (the "
            f"previous way) {rebuild_ms:.0f} ms ({rebuilt.days_rebuilt} days): ×{rebuild_ms / max(fold_ms, 0.1):.1f}"
        )

    print("\nDeleting the definition owning about a tenth of the big account's events")
    counts = {e.slug: EventRecord.objects.filter(account=big, custom_event=e).count() for e in big.custom_events.all()}
    total = sum(counts.values())
    slug = min(counts, key=lambda s: abs(counts[s] - total / 10))
    print(f"  {slug}: {counts[slug]:,} of {total:,} events")
    secret = api_key_create(account=big, name="bench")[1]
    queued = []
    from automations import tasks

    tasks.background_delete_task.delay = lambda job_id: queued.append(job_id)  # a worker runs it, not the request
    api = Client()
    started = time.perf_counter()
    answer = api.post(
        "/graphql/",
        json.dumps({"query": f'mutation {{ delete_custom_event(slug: "{slug}") }}'}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    answer_ms = (time.perf_counter() - started) * 1000
    assert answer.json() == {"data": {"delete_custom_event": True}}, answer.content
    print(f"  delete_custom_event answered in {answer_ms:.0f} ms")

    browser = client_for(big)
    overview = urls(big)["overview, 30 days"]
    video_slug = "watched-product-video" if slug != "watched-product-video" else "requested-demo"
    hit_times, page_times, done = [], [], threading.Event()
    result = {}

    def task():
        from django.db import connection

        started = time.monotonic()
        try:
            result["job"] = background_delete_run(job_id=queued[0])
        finally:
            result["seconds"] = time.monotonic() - started
            connection.close()
            done.set()

    capture = Client()
    n = 0

    def hit():
        nonlocal n
        n += 1
        body = {
            "type": "event",
            "id": f"bench-{n:08d}",
            "visitor": "bench-visitor-1",
            "url": "https://bench.example/",
            "slug": video_slug,
        }
        t = time.perf_counter()
        response = capture.post(
            f"/collect/{big.site_key}",
            data=json.dumps(body),
            content_type="text/plain;charset=UTF-8",
            headers={"Origin": "https://bench.example"},
        )
        assert response.status_code in (200, 202), response.content
        return (time.perf_counter() - t) * 1000

    idle_hits = [hit() for _ in range(20)]
    idle_page = measure(browser, overview, 5)
    thread = threading.Thread(target=task)
    thread.start()
    while not done.is_set():
        hit_times.append(hit())
        t = time.perf_counter()
        browser.get(overview)
        page_times.append((time.perf_counter() - t) * 1000)
    thread.join()
    job = result["job"]
    print(
        f"  the background task removed {job.rows_done:,} rows in {job.batches:,} batches in {result['seconds']:.1f} s "
        f"({job.rows_done / max(result['seconds'], 0.001):,.0f} rows/s)"
    )
    print(
        f"  capture while it ran: median {statistics.median(hit_times):.1f} ms, slowest {max(hit_times):.0f} ms "
        f"({len(hit_times)} hits; idle: median {statistics.median(idle_hits):.1f} ms)"
    )
    print(
        f"  overview (30 days) while it ran: median {statistics.median(page_times):.1f} ms, slowest "
        f"{max(page_times):.0f} ms (idle: median {idle_page[0]:.1f} ms)"
    )
    left = EventRecord.objects.filter(account=big, custom_event__slug=slug).count()
    print(f"  rows of it left: {left}")


if __name__ == "__main__":
    main()
