"""Erasing a contact and running retention, on PostgreSQL.

    .venv/bin/python bench/privacy_bench.py                      # 1,000,000 events of history; a few minutes
    .venv/bin/python bench/privacy_bench.py --events 200000      # smaller

It creates its own database (`paminga_privacy_bench`, or --database, on BENCH_POSTGRES_URL, default
postgres://postgres@127.0.0.1:5432/postgres, loopback), migrates it, and drops it at the end (--keep keeps it).

1. Erasure: an account with a background history (a tenth of --events), and a contact with 10,000 custom events
   (each with an action run), 2,000 page views, 200 visits and 5 browsers. `contact_erase` is timed three times
   (the contact rebuilt each time); the median and the slowest are printed. Target: under 2 s.
2. Retention: an account with --events events over 13 months (seed_demo_data's generator: visits, page views,
   debugger entries, runs), rolled up, then a retention of 12 months: `retention_run` deletes the oldest month of
   raw rows in batches. Its time, the rows deleted and the rate are printed, and the report totals of the deleted
   days are compared before and after (they must not change).
3. Capture during retention: gunicorn (started here on a free loopback port, as the collect service runs: 2 gthread
   workers of 8 threads, hits recorded inline) takes beacon hits from --connections clients in a second process,
   without pause, from before the retention run until after it. The collect latencies of a quiet window
   (--quiet-seconds, just before) and of the retention run (its rollup first, then the deletes) are printed as
   p50/p99 and their ratio. Target: p99 during retention within 1.5x of quiet. The retention time above is then
   the time under that load.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import database_create, database_drop, free_port  # noqa: E402

DB_NAME = "paminga_privacy_bench"
SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def server_database(name: str) -> str:
    return SERVER.rsplit("/", 1)[0] + "/" + name


def contact_with_events(account, *, email: str, events: int = 10_000):
    """A contact with `events` events (each with an action run), page views, visits and browsers, written in bulk."""
    from datetime import timedelta

    from django.utils import timezone

    from automations.models import Action, ActionRun
    from custom_events.models import CustomEvent
    from tracking.models import Contact, EventRecord, Impression, Session, Visitor

    now = timezone.now()
    event = CustomEvent.objects.get_or_create(
        account=account, slug="bench-erase", defaults={"name": "Bench erase", "counts_as_conversion": True}
    )[0]
    action = Action.objects.get_or_create(
        account=account, custom_event=event, kind=Action.Kind.ADD_TAG, defaults={"config": {"tag": "x"}}
    )[0]
    contact = Contact.objects.create(account=account, email=email, fields={"company": "Bench"}, identified_at=now)
    visitors = Visitor.objects.bulk_create(
        [Visitor(account=account, contact=contact, uid=f"{email}-b{i}-0000", last_seen_at=now) for i in range(5)]
    )
    sessions = Session.objects.bulk_create(
        [
            Session(account=account, visitor=visitors[i % 5], started_at=now - timedelta(hours=i), last_seen_at=now)
            for i in range(200)
        ]
    )
    impressions = Impression.objects.bulk_create(
        [
            Impression(
                account=account,
                session=sessions[i % 200],
                visitor=sessions[i % 200].visitor,
                url=f"https://www.example.com/p{i}?email={email}",
                occurred_at=now - timedelta(minutes=i),
            )
            for i in range(2000)
        ],
        batch_size=2000,
    )
    records = EventRecord.objects.bulk_create(
        [
            EventRecord(
                account=account,
                custom_event=event,
                contact=contact,
                visitor=impressions[i % 2000].visitor,
                session=impressions[i % 2000].session,
                attributed_impression=impressions[i % 2000],
                source="beacon",
                occurred_at=now - timedelta(seconds=i),
                page_url="https://www.example.com/pricing",
                metadata={"email": email, "n": i},
                is_conversion=True,
            )
            for i in range(events)
        ],
        batch_size=2000,
    )
    ActionRun.objects.bulk_create(
        [
            ActionRun(account=account, action=action, custom_event=event, event_record=r, status="succeeded")
            for r in records
        ],
        batch_size=2000,
    )


def bench_erasure(*, background: int) -> None:
    from automations.privacy import contact_erase
    from automations.reports.seed import demo_history_create
    from paminga.services import account_create

    account = account_create(name="Bench erase", slug="bench-erase")
    started = time.monotonic()
    seeded = demo_history_create(account=account, events=background, days=90)
    print(f"erasure: background of {seeded.events:,} events seeded in {time.monotonic() - started:.0f} s")
    timings = []
    for i in range(3):
        email = f"erase-{i}@example.com"
        contact_with_events(account, email=email)
        started = time.perf_counter()
        result = contact_erase(account=account, email=email, erased_by="command")
        timings.append(time.perf_counter() - started)
        assert result.counts["events"] == 10_000, result.counts
    print(
        f"erasure of a contact with 10,000 events, 10,000 runs, 2,000 page views, 200 visits: "
        f"median {statistics.median(timings):.2f} s, slowest {max(timings):.2f} s (target < 2 s)"
    )


def bench_retention(*, events: int, capture: "Capture") -> None:
    from datetime import timedelta

    from django.utils import timezone

    from automations.models import ActionRun
    from automations.reports import selectors
    from automations.reports.seed import demo_history_create
    from automations.reports.services import report_rollups_update
    from automations.retention import retention_horizon, retention_run
    from paminga.models import Account
    from paminga.services import account_create, account_update
    from tracking.models import EventRecord, Impression, RejectedHit, Session

    account = account_create(name="Bench retention", slug="bench-retention")
    started = time.monotonic()
    seeded = demo_history_create(account=account, events=events, days=396)
    print(
        f"retention: {seeded.events:,} events, {Impression.objects.filter(account=account).count():,} page views, "
        f"{Session.objects.filter(account=account).count():,} visits over 13 months, seeded in "
        f"{time.monotonic() - started:.0f} s"
    )
    # Debugger entries and action runs on the old days too, so that every kind of raw row is deleted.
    old = list(EventRecord.objects.filter(account=account).order_by("occurred_at")[:20_000])
    from automations.models import Action

    action = Action.objects.create(
        account=account, custom_event=old[0].custom_event, kind="add_tag", config={"tag": "x"}
    )
    ActionRun.objects.bulk_create(
        [
            ActionRun(account=account, action=action, custom_event_id=old[0].custom_event_id, event_record=r)
            for r in old
            if r.custom_event_id == old[0].custom_event_id
        ],
        batch_size=5000,
    )
    hits = RejectedHit.objects.bulk_create(
        [RejectedHit(account=account, reason="MALFORMED", message="bench") for _ in range(5000)], batch_size=5000
    )
    RejectedHit.objects.filter(pk__in=[h.pk for h in hits]).update(created_at=old[0].occurred_at)

    now = timezone.now() + timedelta(minutes=2)
    started = time.monotonic()
    report_rollups_update(now=now)
    print(f"retention: first rollup in {time.monotonic() - started:.0f} s")

    account_update(account=account, retention_months=12)
    account = Account.objects.get(pk=account.pk)
    raw_from, _cutoff = retention_horizon(account=account, now=now)
    first = EventRecord.objects.filter(account=account).order_by("occurred_at").first().occurred_at
    first_day = first.astimezone(account.tzinfo).date()
    last_day = raw_from - timedelta(days=1)

    def totals():
        with selectors.report_scope(account=account, start=first_day, end=last_day) as scope:
            overview = selectors.event_overview(scope=scope)
            summary = selectors.conversions_summary(scope=scope)
        return [(f.event.slug, f.fires, f.conversions, f.unique_contacts) for f in overview[0]], (
            summary.conversions,
            summary.visits,
        )

    before = totals()
    capture.quiet()
    started = time.monotonic()
    run = retention_run(now=now, accounts=[account])
    seconds = time.monotonic() - started
    capture.during(started, started + seconds)
    after = totals()
    deleted = sum(run.deleted.values())
    print(
        f"retention of {first_day}..{last_day} ({(last_day - first_day).days + 1} days): deleted "
        + ", ".join(f"{n:,} {t.replace('_', ' ')}" for t, n in run.deleted.items())
        + f" in {run.batches:,} batches of {run.batches and deleted // run.batches} rows, {seconds:.1f} s "
        f"({deleted / seconds:,.0f} rows/s)"
    )
    print(f"retention: report totals of the deleted days unchanged: {before == after}")
    if before != after:
        print(f"  before {before}\n  after  {after}")
        sys.exit(1)


# --- Capture while retention runs -----------------------------------------------------------------------------

COLLECT_ORIGIN = "https://www.bench.test"
COLLECT_SLUGS = ("watched-product-video", "visited-pricing-page", "requested-demo")


def collect_clients(url: str, connections: int, stop, samples_path: str) -> None:
    """Run in a process of its own (so that its threads do not take the GIL from the retention run): `connections`
    keep-alive clients post beacon hits without pause until `stop` is set, then write every hit's (start,
    latency, ok) to `samples_path`. The start is time.monotonic(), the same clock as the parent's on Linux."""
    import http.client
    import json
    import random
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    samples: list[list[tuple[float, float, bool]]] = [[] for _ in range(connections)]

    def client(n: int) -> None:
        rnd = random.Random(n)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        i = 0
        while not stop.is_set():
            i += 1
            hit = {"id": f"p{os.getpid()}-{n}-{i:08d}", "visitor": f"v{n}-{rnd.randrange(500):04d}-bench"}
            hit["url"] = f"https://www.bench.test/page/{rnd.randrange(50)}"
            if rnd.random() < 0.6:
                hit.update(type="impression", title="Bench page")
            else:
                hit.update(type="event", slug=rnd.choice(COLLECT_SLUGS), metadata={"planTier": "pro", "n": i})
            headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": COLLECT_ORIGIN}
            started = time.monotonic()
            try:
                conn.request("POST", parts.path, body=json.dumps(hit), headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status in (200, 202)
            except (OSError, http.client.HTTPException):
                conn.close()
                ok = False
            samples[n].append((started, time.monotonic() - started, ok))
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(samples_path, "w") as out:
        for rows in samples:
            out.writelines(f"{start:.6f} {latency:.6f} {int(ok)}\n" for start, latency, ok in rows)


class Capture:
    """A gunicorn serving the collect endpoint of an account of its own, and clients posting hits to it without
    pause. `quiet()` measures a window before retention, `during()` marks the retention run's; `report()` prints
    both and their ratio."""

    def __init__(self, *, database_url: str, connections: int, quiet_seconds: float):
        self.database_url = database_url
        self.connections = connections
        self.quiet_seconds = quiet_seconds
        self.windows: dict[str, tuple[float, float]] = {}
        self.server = self.clients = None

    def _start(self) -> None:
        """Started only now: seeding the history locks the tables it writes, and would hold every hit."""
        import multiprocessing
        import subprocess
        import tempfile
        import urllib.request

        from custom_events.services import custom_event_create
        from paminga.services import account_create

        account = account_create(name="Bench capture", slug="bench-capture", domains=["www.bench.test"])
        for slug in COLLECT_SLUGS:
            custom_event_create(account=account, name=slug.replace("-", " ").title(), slug=slug)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "SECRET_KEY": "bench",
            "DEBUG": "0",
            # One loopback address and one site key send everything: the abuse limits are not what is measured.
            "RATE_LIMIT_COLLECT_PER_ADDRESS": "0",
            "RATE_LIMIT_COLLECT_PER_SITE_KEY": "0",
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "PYTHONWARNINGS": "ignore",
        }
        env.pop("INGEST_QUEUE_URL", None)  # no queue: every hit is recorded inline, in the tables retention deletes
        # As docker-compose runs the collect service.
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "paminga.wsgi:application",
            f"--bind=127.0.0.1:{port}",
        ]
        command += ["--workers=2", "--worker-class=gthread", "--threads=8", "--log-level=warning"]
        self.server = subprocess.Popen(command, cwd=ROOT, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or self.server.poll() is not None:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.2)
        self.samples_path = tempfile.mkstemp(prefix="privacy-bench-", suffix=".txt")[1]
        # spawn, not fork: a forked child would share (and close) this process's database connections.
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        self.clients = context.Process(
            target=collect_clients,
            args=(f"{base}/collect/{account.site_key}", self.connections, self.stop_event, self.samples_path),
        )
        self.clients.start()

    def quiet(self) -> None:
        self._start()
        time.sleep(3)  # warm-up: connections open, workers' caches filled
        started = time.monotonic()
        time.sleep(self.quiet_seconds)
        self.windows["quiet"] = (started, time.monotonic())

    def during(self, started: float, ended: float) -> None:
        self.windows["during retention"] = (started, ended)

    def stop(self) -> None:
        if self.clients is not None and self.clients.is_alive():
            self.stop_event.set()
            self.clients.join(timeout=60)
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            self.server.wait(timeout=60)

    def report(self) -> None:
        self.stop()
        rows = [line.split() for line in Path(self.samples_path).read_text().splitlines()]
        os.unlink(self.samples_path)
        figures = {}
        for name, (start, end) in self.windows.items():
            window = [(float(latency), ok == "1") for at, latency, ok in rows if start <= float(at) < end]
            latencies = sorted(latency for latency, ok in window if ok)
            if not latencies:
                print(f"capture {name}: no hit answered")
                continue
            failed = sum(1 for _latency, ok in window if not ok)
            p50, p99 = _percentile(latencies, 50), _percentile(latencies, 99)
            figures[name] = p50, p99
            print(
                f"capture {name} ({end - start:.0f} s, {self.connections} clients): {len(latencies):,} hits "
                f"({len(latencies) / (end - start):,.0f}/s), p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
                + (f", {failed} failed" if failed else "")
            )
        if len(figures) == 2:
            (q50, q99), (d50, d99) = figures["quiet"], figures["during retention"]
            print(f"capture during retention vs quiet: p50 {d50 / q50:.2f}x, p99 {d99 / q99:.2f}x (target p99 < 1.5x)")


def _percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the retention history")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--database", default=DB_NAME, help="the name of the database created (and dropped)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent collect clients")
    parser.add_argument("--quiet-seconds", type=float, default=15, help="the quiet window measured before retention")
    args = parser.parse_args()

    database_url = os.environ["DATABASE_URL"] = database_create(server_database(args.database), fresh=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = ""  # tasks in-process: nothing leaves the machine
    os.environ.update(SECRET_KEY="bench", DEBUG="0")  # settings refuse to start without a secret key
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    capture = None
    try:
        call_command("migrate", verbosity=0, interactive=False)
        bench_erasure(background=max(args.events // 10, 1000))
        capture = Capture(database_url=database_url, connections=args.connections, quiet_seconds=args.quiet_seconds)
        bench_retention(events=args.events, capture=capture)
        capture.report()
    finally:
        if capture is not None:
            capture.stop()
        connections.close_all()
        if not args.keep:
            database_drop(server_database(args.database))


if __name__ == "__main__":
    main()
