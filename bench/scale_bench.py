"""Scale: report pages flat whatever the account holds, rollup runs that cost what is new, deletes that answer at
once. On a PostgreSQL database of its own, created and dropped by the script (loopback only):

    .venv/bin/python bench/scale_bench.py                          # 1M events beside 100k and an empty account
    .venv/bin/python bench/scale_bench.py --events 300000 --small 30000 --keep   # smaller; keep the database
    .venv/bin/python bench/scale_bench.py --sizes 5000000,20000000   # one account growing through sizes
    SCALE_BENCH_SERVER=postgres://postgres@127.0.0.1:5432 ...      # the server (default: that one)
    SCALE_BENCH_BROKER=redis://127.0.0.1:6379/13 ...                # the delete's broker (default: that one)
    SCALE_BENCH_QUEUE=redis://127.0.0.1:6379/12 ...                 # capture through the ingest queue (an empty db)
    BACKGROUND_DELETE_BATCH_SIZE=2000 BACKGROUND_DELETE_REST_RATIO=1 ...   # the delete's tunables (settings.py)

Three accounts in America/New_York: an empty one (the baseline), a small and a big one, each written by the
seed_demo_data generator over a year, then rolled up. It measures, through Django's test client (middleware, view,
queries, template), after two warm-up requests:

- the overview and an event report for the last 30 and the last 365 days: median and slowest of ROUNDS, the
  accounts taking turns (load from elsewhere on the machine then falls on all three alike), with queries per page;
- a rollup run after "a few minutes" of new traffic (NEW_EVENTS events written into today), against what a run
  cost before it folded new rows (rebuilding the days they fall on from all their rows);
- the time `delete_custom_event` (GraphQL) takes to answer for the definition owning about a tenth of the big
  account's events, and the background task's duration and rows/s, with capture and the overview measured while
  it runs (below).

Ratios are printed against the empty account and the small one.

With --sizes, one big account grows through the sizes instead (the empty account beside it as the baseline): it
is written to the first size, measured, then more events are added (another random seed per chunk) up to the next
size, and measured again. At each size: every report page (overview, an event report, the conversions page and the
GraphQL report query, 30 and 365 days) with ratios to the empty account and to the first size; a rollup run after
NEW_EVENTS new events and a full rebuild of the big account's rollups (`reports_rollup --rebuild`); bytes per
recorded event (after VACUUM ANALYZE: the database, and heap and indexes of each table, partitions summed under
their parent); rows/s of the 365-day occurrences CSV export of the biggest event. At the last size only (it
destroys data), the delete of the definition owning about a tenth of the events, with capture's p99 during it.

The delete, as in production: the mutation enqueues the task on a Redis broker (SCALE_BENCH_BROKER), in a queue of
the run's own (named after its database, so runs side by side never take each other's), and a real Celery worker
(`celery -A paminga worker`, solo pool), started by the bench in a process of its own with the same settings and
database, runs it. Capture is timed in rounds of one capture hit, one 30-day overview request and one look at the
job's progress: SAMPLE_HITS rounds before the delete, then, until the task is done, stretches of WINDOW rounds with
the worker running and stopped (SIGSTOP) in turn. The rounds with the task running and with it stopped are taken
the same way over the same minutes, so load from elsewhere on the machine (a test suite, another bench) falls on
both alike; as many of each are compared. Each sample also prints the machine's 1-minute load, how busy its cores
were, and the WAL and checkpoints the server wrote meanwhile. The worker is killed with the bench (also on Ctrl-C,
a SIGTERM or a failure, and on Linux a SIGKILL).

Capture records each hit inline unless SCALE_BENCH_QUEUE names a Redis database of the bench's own (it must be
empty, and is emptied at the end): capture then appends each hit to it and answers, as production does
(docker-compose.yml), and a `manage.py ingest` process started by the bench records them; the bench prints how many
it recorded.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import database_create, database_drop  # noqa: E402

SERVER = os.environ.get("SCALE_BENCH_SERVER", "postgres://postgres@127.0.0.1:5432").rstrip("/")
DATABASE = f"scale_bench_{os.getpid()}"
ROUNDS = 11
NEW_EVENTS = 300
# The broker of the Celery worker that runs the background delete (the task goes to a queue named after DATABASE).
BROKER = os.environ.get("SCALE_BENCH_BROKER", "redis://127.0.0.1:6379/13")
# With it, capture appends each hit to this ingest queue and answers, as in production (docker-compose.yml), and a
# `manage.py ingest` process started by the bench records them; without it, capture records each hit inline.
QUEUE = os.environ.get("SCALE_BENCH_QUEUE", "")
DELETE_TASK = "automations.tasks.background_delete_task"
SAMPLE_HITS = 400  # capture hits of the quiet sample before the background delete
WINDOW, SKIP = 30, 3  # during it: rounds per stretch with the worker running or stopped, of which the first untimed
EXPORT_SECONDS = 30  # the export is read for at most this long (rows/s over what was read)
TIME_ZONE = "America/New_York"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="Events of the big account.")
    parser.add_argument("--small", type=int, default=100_000, help="Events of the small account.")
    parser.add_argument("--keep", action="store_true", help="Keep the database (prints its name).")
    parser.add_argument(
        "--sizes", help="One account growing through these sizes, e.g. 5000000,20000000 (instead of three accounts)."
    )
    parser.add_argument(
        "--vacuum", action="store_true", help="With --sizes: VACUUM ANALYZE the whole database before the bytes."
    )
    parser.add_argument("--rounds", type=int, help=f"Rounds per page (default: {ROUNDS}, 7 with --sizes).")
    args = parser.parse_args()
    if args.sizes:
        args.sizes = [int(n) for n in args.sizes.split(",")]
        if args.sizes != sorted(set(args.sizes)) or args.sizes[0] < 1:
            sys.exit("--sizes: increasing positive numbers of events.")
    args.rounds = args.rounds or (7 if args.sizes else ROUNDS)
    host = urlsplit(SERVER).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"Loopback only: {host} is not this machine.")
    # A kill (SIGTERM, SIGHUP) unwinds like Ctrl-C, so that the database is dropped in any case.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)
    import redis

    try:
        redis.Redis.from_url(BROKER, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        sys.exit(f"The background delete's worker needs Redis at {BROKER} (SCALE_BENCH_BROKER): {exc}")
    if QUEUE:
        # Emptied at the end: so it must hold nothing of anyone else's at the start.
        if QUEUE == BROKER:
            sys.exit("SCALE_BENCH_QUEUE: give the ingest queue a Redis database other than the broker's.")
        try:
            waiting = redis.Redis.from_url(QUEUE, socket_connect_timeout=2).dbsize()
        except redis.RedisError as exc:
            sys.exit(f"SCALE_BENCH_QUEUE: Redis at {QUEUE} is unreachable: {exc}")
        if waiting:
            sys.exit(f"SCALE_BENCH_QUEUE: {QUEUE} is not empty; give the bench a Redis database of its own.")
        os.environ["INGEST_QUEUE_URL"] = QUEUE
    database_create(f"{SERVER}/{DATABASE}")
    try:
        os.environ["DATABASE_URL"] = f"{SERVER}/{DATABASE}"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")
        os.environ.setdefault("STATIC_MANIFEST", "0")
        # Tasks go to the bench's broker: only the background delete is sent (the demo data has no actions), and the
        # worker started for it runs it.
        os.environ["CELERY_BROKER_URL"] = BROKER
        os.environ["REDIS_URL"] = ""
        os.environ.setdefault("SECRET_KEY", "scale-bench")
        os.environ["LOG_LEVEL"] = "ERROR"
        # The bench is one client hammering one site key: no rate limit.
        for limit in ("COLLECT_PER_ADDRESS", "COLLECT_PER_SITE_KEY", "API_CALLS_PER_KEY", "API_FAILURES_PER_ADDRESS"):
            os.environ[f"RATE_LIMIT_{limit}"] = "0"
        import django

        django.setup()
        run_sizes(args) if args.sizes else run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            print(f"Kept database {DATABASE}")
        else:
            database_drop(f"{SERVER}/{DATABASE}")


def client_for(account):
    """A logged-in member's test client, the account chosen."""
    from django.test import Client

    from paminga.services import membership_create, user_get_or_create

    user = user_get_or_create(email=f"bench@{account.slug}.example")
    membership_create(account=account, user=user)
    client = Client()
    client.force_login(user)
    session = client.session
    session["current_account_id"] = account.pk
    session.save()
    return client


def p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[98] if len(times) > 1 else times[0]


def event_counts(account) -> dict[str, int]:
    """Recorded occurrences per definition slug (one grouped count)."""
    from django.db.models import Count

    from tracking.models import EventRecord

    rows = EventRecord.objects.filter(account=account).values("custom_event__slug").annotate(n=Count("id"))
    return {r["custom_event__slug"]: r["n"] for r in rows if r["custom_event__slug"]}


def die_with_parent() -> None:
    """For a child process: on Linux it is killed when the bench dies, even by a SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def ingester_start() -> subprocess.Popen:
    """`manage.py ingest` in a process of its own, on the bench's database and QUEUE."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "ingest"], cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )  # fmt: skip


def worker_start() -> subprocess.Popen:
    """A Celery worker of the project (`celery -A paminga worker`) in a process of its own, on the bench's database
    and BROKER, as production runs the background delete; returns once it answers a ping. The solo pool runs the
    task in that one process, so killing it stops the task at once; on Linux it dies with the bench even on a
    SIGKILL (PR_SET_PDEATHSIG)."""
    from paminga.celery import app

    # The delete's task goes to a queue of this run's own, which only its worker reads: benches running side by side
    # on the same broker never take each other's task (each on its own database).
    app.conf.task_routes = {**(app.conf.task_routes or {}), DELETE_TASK: {"queue": DATABASE}}
    app.amqp.flush_routes()
    app.amqp.__dict__.pop("router", None)  # built again, with that route

    name = f"scale-bench-{os.getpid()}@localhost"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "paminga", "--quiet", "worker", "-P", "solo", "-n", name,
         "-Q", DATABASE, "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT,
        env={**os.environ, "CELERY_BROKER_URL": BROKER},
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[name], timeout=0.5):
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            raise SystemExit(f"The Celery worker did not start (broker {BROKER}).")
    return worker


def cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all the machine's cores (/proc/stat), (0, 0) where there is none."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def server_counters() -> tuple[int, int]:
    """The server's WAL position (bytes) and the checkpoints it has started (timed and requested)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, checkpoints_timed + checkpoints_req "
            "FROM pg_stat_bgwriter"
        )
        return cursor.fetchone()


@dataclass
class Sample:
    """Capture and overview times of rounds taken one way, with what the machine and the server did meanwhile."""

    hits: list[float] = field(default_factory=list)  # capture, ms
    pages: list[float] = field(default_factory=list)  # the overview, ms
    seconds: float = 0.0
    busy: int = 0  # jiffies the machine's cores were busy (/proc/stat) ...
    jiffies: int = 0  # ... of all
    wal: int = 0  # bytes of WAL the server wrote
    checkpoints: int = 0  # checkpoints it started
    loads: list[float] = field(default_factory=list)  # 1-minute load average at the end of each stretch

    def line(self, name: str, k: int | None = None) -> str:
        """Its first k rounds (all of them without k); the time, load and the rest are the whole sample's."""
        hits, pages = self.hits[:k], self.pages[:k]
        busy = f", cores {self.busy / self.jiffies:.0%} busy" if self.jiffies else ""
        return (
            f"  {name:<16} capture median {statistics.median(hits):5.1f} ms, p99 {p99(hits):5.1f} ms, slowest "
            f"{max(hits):4.0f} ms ({len(hits)} hits); overview median {statistics.median(pages):5.1f} ms; "
            f"{self.seconds:.0f} s, load {statistics.mean(self.loads):.2f}{busy}; WAL "
            f"{self.wal / 2**20 / max(self.seconds, 0.001):.1f} MiB/s, {self.checkpoints} checkpoints"
        )


def delete_measure(*, big, overview_url: str, counts: dict[str, int] | None = None) -> None:
    """Deletes the definition owning about a tenth of the account's events through GraphQL; a Celery worker in a
    process of its own runs the background task, as in production. Rounds of one capture hit, one 30-day overview
    request and one look at the job's progress are timed: SAMPLE_HITS of them before the delete (quiet), then,
    until the task is done, stretches of WINDOW rounds with the worker running and stopped (SIGSTOP) in turn, so the
    rounds during the task and the quiet ones are taken the same way at the same time, whatever else the machine
    runs; the first SKIP rounds of each stretch are left out (a statement the worker sent goes on in the server)."""
    from django.conf import settings
    from django.test import Client

    from automations.models import BackgroundDelete
    from paminga.services import api_key_create
    from tracking.models import EventRecord

    print("\nDeleting the definition owning about a tenth of the big account's events")
    counts = counts or event_counts(big)
    total = sum(counts.values())
    slug = min(counts, key=lambda s: abs(counts[s] - total / 10))
    event = big.custom_events.get(slug=slug)
    print(f"  {slug}: {counts[slug]:,} of {total:,} events")
    secret = api_key_create(account=big, name="bench-delete")[1]
    api = Client()
    browser = client_for(big)
    capture = Client()
    video_slug = "watched-product-video" if slug != "watched-product-video" else "requested-demo"
    job = BackgroundDelete.objects.filter(kind=BackgroundDelete.Kind.CUSTOM_EVENT, target_id=event.pk)
    n = 0

    def hit() -> float:
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

    def page() -> float:
        t = time.perf_counter()
        assert browser.get(overview_url).status_code == 200
        return (time.perf_counter() - t) * 1000

    def rounds(sample: Sample, count: int | None, skip: int = 0) -> bool:
        """`count` rounds into the sample (the first `skip` untimed), or fewer if the job is done: says whether it
        is."""
        wal0, checkpoints0 = server_counters()
        busy0, jiffies0 = cpu_busy()
        started = time.monotonic()
        done = False
        for i in range(count):
            hit_ms, page_ms = hit(), page()
            if i >= skip:
                sample.hits.append(hit_ms)
                sample.pages.append(page_ms)
            done = job.values_list("status", flat=True).first() == BackgroundDelete.Status.DONE
            if done:
                break
        sample.seconds += time.monotonic() - started
        busy1, jiffies1 = cpu_busy()
        sample.busy, sample.jiffies = sample.busy + busy1 - busy0, sample.jiffies + jiffies1 - jiffies0
        wal1, checkpoints1 = server_counters()
        sample.wal, sample.checkpoints = sample.wal + wal1 - wal0, sample.checkpoints + checkpoints1 - checkpoints0
        sample.loads.append(os.getloadavg()[0])
        return done

    before, during, paused = Sample(), Sample(), Sample()
    worker = worker_start()
    ingester = None
    measured = False
    try:
        ingester = ingester_start() if QUEUE else None
        rounds(Sample(), 5)  # warm-up
        rounds(before, SAMPLE_HITS)
        started = time.perf_counter()
        answer = api.post(
            "/graphql/",
            json.dumps({"query": f'mutation {{ delete_custom_event(slug: "{slug}") }}'}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        answer_ms = (time.perf_counter() - started) * 1000
        assert answer.json() == {"data": {"delete_custom_event": True}}, answer.content
        print(f"  delete_custom_event answered in {answer_ms:.0f} ms (the task enqueued on {BROKER}, queue {DATABASE})")
        deadline = time.monotonic() + 60
        while job.values_list("status", flat=True).first() in (None, BackgroundDelete.Status.PENDING):
            if time.monotonic() > deadline:
                raise SystemExit("The worker did not take the delete's task within 60 s.")
            time.sleep(0.02)
        while not rounds(during, WINDOW, SKIP):
            os.kill(worker.pid, signal.SIGSTOP)
            try:
                rounds(paused, WINDOW, SKIP)
            finally:
                os.kill(worker.pid, signal.SIGCONT)
        measured = True
    finally:
        worker.kill()
        worker.wait()
        import redis

        if ingester is not None:
            try:
                recorded = EventRecord.objects.filter(account=big, visitor__uid="bench-visitor-1")
                deadline = time.monotonic() + 120
                while measured and recorded.count() < n and time.monotonic() < deadline and ingester.poll() is None:
                    time.sleep(0.2)
                if measured:
                    print(
                        f"  capture answered {n:,} hits through the ingest queue ({QUEUE}); the ingester, in a "
                        f"process of its own, recorded {recorded.count():,} of them"
                    )
            finally:
                ingester.kill()
                ingester.wait()
                redis.Redis.from_url(QUEUE).flushdb()

        # What the run's queue left on the broker (kombu's bindings of it).
        redis.Redis.from_url(BROKER).delete(
            DATABASE, f"_kombu.binding.{DATABASE}", f"_kombu.binding_permanent.{DATABASE}"
        )
    done = job.get()
    seconds = (done.finished_at - done.created_at).total_seconds()
    running = max(seconds - paused.seconds, 0.001)
    print(
        f"  the worker removed {done.rows_done:,} rows in {done.batches:,} batches in {running:.1f} s of running "
        f"({done.rows_done / running:,.0f} rows/s; batches of {settings.BACKGROUND_DELETE_BATCH_SIZE:,}, rest ratio "
        f"{settings.BACKGROUND_DELETE_REST_RATIO:g}), and {paused.seconds:.0f} s stopped by the bench"
    )
    left = EventRecord.objects.filter(account=big, custom_event__slug=slug).count()
    print(f"  rows of it left: {left}")
    # The same number of rounds on each side.
    k = min(len(during.hits), len(paused.hits))
    if k < 2:
        print(f"  the task was done within {WINDOW * 2} rounds: too quick to compare capture with it (more events)")
        return
    print(
        f"  rounds of a capture hit, the 30-day overview and a look at the job, taken the same way; during the task "
        f"in stretches of {WINDOW} rounds (the first {SKIP} left out) with the worker running and stopped in turn:"
    )
    print(during.line("task running", k))
    print(paused.line("worker stopped", k))
    print(before.line("quiet, before", k))
    print(
        f"  capture with the task running ÷ stopped: p99 {p99(during.hits[:k]) / p99(paused.hits[:k]):.2f}×, median "
        f"{statistics.median(during.hits[:k]) / statistics.median(paused.hits[:k]):.2f}× "
        f"(÷ quiet before: p99 {p99(during.hits[:k]) / p99(before.hits[:k]):.2f}×)"
    )


def run(args) -> None:
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from automations.reports.seed import demo_definitions_ensure, demo_history_create
    from automations.reports.selectors import report_default_range
    from automations.reports.services import report_days_invalidate, report_rollups_update
    from paminga.services import account_create

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

    def urls(account):
        event = account.custom_events.get(slug="watched-product-video")
        today = report_default_range(account=account)[1]
        result = {}
        for days in (30, 365):
            span = f"?start={today - timedelta(days=days - 1)}&end={today}"
            result[f"overview, {days} days"] = f"/automations/custom-events/{span}"
            result[f"event report, {days} days"] = f"/automations/custom-events/{event.pk}/report/{span}"
        return result

    print(f"\nReport pages (median / slowest of {args.rounds}, ms; × = ratio of medians; q = queries per page)")
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
        for _ in range(args.rounds):
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

    delete_measure(big=big, overview_url=urls(big)["overview, 30 days"])


REPORT_QUERY = """{
  custom_events_report(start: "%(start)s", end: "%(end)s") {
    time_zone
    events { slug fires unique_contacts unique_visitors conversions daily { day fires conversions } }
    all_events { fires unique_contacts unique_visitors conversions }
  }
  custom_event_report(slug: "watched-product-video", start: "%(start)s", end: "%(end)s") {
    figures { fires conversions attributed_conversions }
    breakdown(dimension: CHANNEL) { value label fires conversions share }
  }
  conversions_report(start: "%(start)s", end: "%(end)s") {
    conversions visits conversion_rate by_channel { value conversions base conversion_rate }
  }
}"""

# Each partition of a partitioned table counted under its parent; heap = the table with its TOAST, FSM and VM.
TABLE_BYTES_SQL = """
SELECT coalesce(parent.relname, c.relname), sum(pg_table_size(c.oid)), sum(pg_indexes_size(c.oid)),
       sum(greatest(c.reltuples, 0))::bigint
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
LEFT JOIN pg_class parent ON parent.oid = i.inhparent
WHERE c.relkind = 'r'
GROUP BY 1
ORDER BY sum(pg_total_relation_size(c.oid)) DESC
"""


def run_sizes(args) -> None:
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from automations.models import ReportAccountRollup, ReportRebuild
    from automations.reports import views
    from automations.reports.seed import demo_definitions_ensure, demo_history_create
    from automations.reports.selectors import report_default_range
    from automations.reports.services import report_days_invalidate, report_rollups_update
    from paminga.services import account_create, api_key_create

    settings.ALLOWED_HOSTS = ["*"]
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"Database {DATABASE}: one account growing through {', '.join(f'{n:,}' for n in args.sizes)} events")
    empty, big = (
        account_create(name=slug, slug=slug, time_zone=TIME_ZONE, domains=["bench.example"])
        for slug in ("bench-empty", "bench-big")
    )
    for account in (empty, big):
        demo_definitions_ensure(account=account)
    browsers = {a.pk: client_for(a) for a in (empty, big)}
    secrets = {a.pk: api_key_create(account=a, name="bench")[1] for a in (empty, big)}
    api = Client()

    def pages(account) -> dict[str, tuple[str, str]]:
        event = account.custom_events.get(slug="watched-product-video")
        today = report_default_range(account=account)[1]
        result = {}
        for days in (30, 365):
            start = today - timedelta(days=days - 1)
            span = f"?start={start}&end={today}"
            result[f"overview, {days} d"] = ("get", f"/automations/custom-events/{span}")
            result[f"event report, {days} d"] = ("get", f"/automations/custom-events/{event.pk}/report/{span}")
            result[f"conversions, {days} d"] = ("get", f"/automations/conversions/{span}")
            result[f"GraphQL report, {days} d"] = ("graphql", REPORT_QUERY % {"start": start, "end": today})
        return result

    def request(account, spec) -> None:
        kind, target = spec
        if kind == "get":
            response = browsers[account.pk].get(target)
            assert response.status_code == 200, (target, response.status_code)
            return
        response = api.post(
            "/graphql/",
            json.dumps({"query": target}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secrets[account.pk]}",
        )
        assert response.status_code == 200 and "errors" not in response.json(), response.content[:500]

    def rollups_rebuild() -> float:
        """`reports_rollup --rebuild --account bench-big`: forget the account's rollups, then a run rebuilds them
        from the recorded rows (and rolls up whatever else is new)."""
        started = time.monotonic()
        ReportRebuild.objects.filter(account=big).delete()
        ReportAccountRollup.objects.filter(account=big).delete()
        report_rollups_update(now=timezone.now() + timedelta(minutes=2))
        return time.monotonic() - started

    first_medians: dict[str, float] = {}
    written = 0
    for step, size in enumerate(args.sizes):
        last = step == len(args.sizes) - 1
        print(f"\n=== {size:,} events ===", flush=True)
        started = time.monotonic()
        demo_history_create(account=big, events=size - written, days=365, random_seed=step + 1)
        seconds = time.monotonic() - started
        print(f"  {size - written:,} events written in {seconds:.0f} s ({(size - written) / seconds:,.0f} events/s)")
        written = size
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        print(f"  ANALYZE: {time.monotonic() - started:.0f} s", flush=True)
        seconds = rollups_rebuild()
        print(f"  full rollup rebuild of the account (reports_rollup --rebuild): {seconds:.1f} s", flush=True)
        # The raw tables were only inserted into: VACUUM would not change their size, and reading them all again
        # costs minutes at these sizes; it runs on the tables the rebuild rewrote (or on all with --vacuum).
        started = time.monotonic()
        with connection.cursor() as cursor:
            if args.vacuum:
                cursor.execute("VACUUM ANALYZE")
            else:
                cursor.execute("SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'automations_%%'")
                for (table,) in cursor.fetchall():
                    cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(table)}")
        what = "the database" if args.vacuum else "the automations tables"
        print(f"  VACUUM ANALYZE of {what}: {time.monotonic() - started:.0f} s", flush=True)

        started = time.monotonic()
        counts = event_counts(big)
        events = sum(counts.values())
        print(f"  recorded events: {events:,} (counted in {time.monotonic() - started:.1f} s)")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            database = cursor.fetchone()[0]
            cursor.execute(TABLE_BYTES_SQL)
            tables = cursor.fetchall()
        print(f"\nBytes per recorded event: database {database / 2**30:.2f} GiB, {database / events:,.0f} B/event")
        print(f"  {'table':<40}{'heap B/ev':>11}{'index B/ev':>12}{'total GiB':>11}{'rows':>14}")
        for name, heap, index, rows in tables[:12]:
            total = (heap + index) / 2**30
            print(f"  {name:<40}{heap / events:>11,.0f}{index / events:>12,.0f}{total:>11.2f}{rows:>14,}")

        print(f"\nReport pages (median / slowest of {args.rounds}, ms; × = ratio of medians; q = queries per page)")
        versus = f"{f'÷ {args.sizes[0]:,}':>14}" if step else ""
        print(f"{'page':<24}{'empty':>16}{f'{size:,} events':>20}{'÷ empty':>10}{versus}{'q':>10}")
        specs = {a.pk: pages(a) for a in (empty, big)}
        for name in specs[empty.pk]:
            times = {empty.pk: [], big.pk: []}
            queries = {}
            for account in (empty, big):  # warm-up
                for _ in range(2):
                    request(account, specs[account.pk][name])
            for _ in range(args.rounds):  # the accounts take turns
                for account in (empty, big):
                    with CaptureQueriesContext(connection) as captured:
                        t = time.perf_counter()
                        request(account, specs[account.pk][name])
                        times[account.pk].append((time.perf_counter() - t) * 1000)
                    queries[account.pk] = len(captured.captured_queries)
            e, b = ((statistics.median(times[a.pk]), max(times[a.pk])) for a in (empty, big))
            first_medians.setdefault(name, b[0])
            ratio = f"{b[0] / first_medians[name]:>13.2f}×" if step else ""
            flag = " over 300 ms" if last and b[0] > 300 else ""
            flag += " over 1.5×" if step and b[0] > 1.5 * first_medians[name] else ""
            print(
                f"{name:<24}{e[0]:>8.1f} / {e[1]:>5.0f}{b[0]:>12.1f} / {b[1]:>5.0f}{b[0] / e[0]:>9.2f}×{ratio}"
                f"{f'{queries[empty.pk]}/{queries[big.pk]}':>10}{flag}",
                flush=True,
            )

        print(f"\nRollup runs ({NEW_EVENTS:,} new events written into today, as five minutes of traffic)")
        for _ in range(2):
            started = time.monotonic()
            report_rollups_update(now=timezone.now() + timedelta(minutes=2))
            idle_ms = (time.monotonic() - started) * 1000
        print(f"  a run with nothing new: {idle_ms:.0f} ms")
        demo_history_create(account=big, events=NEW_EVENTS, days=1, random_seed=100 + step)
        started = time.monotonic()
        folded = report_rollups_update(now=timezone.now() + timedelta(minutes=2))
        fold_ms = (time.monotonic() - started) * 1000
        today = report_default_range(account=big)[1]
        report_days_invalidate(account=big, days=[today, today - timedelta(days=1)])
        started = time.monotonic()
        report_rollups_update(now=timezone.now() + timedelta(minutes=2))
        rebuild_ms = (time.monotonic() - started) * 1000
        print(
            f"  folding the new rows: {fold_ms:.0f} ms ({folded.rows_folded:,} rows, {folded.days_rebuilt} days "
            f"rebuilt); rebuilding today and yesterday from all their rows: {rebuild_ms:.0f} ms",
            flush=True,
        )

        if hasattr(views, "event_report_csv"):
            slug = max(counts, key=counts.get)
            event = big.custom_events.get(slug=slug)
            today = report_default_range(account=big)[1]
            url = (
                f"/automations/custom-events/{event.pk}/report/occurrences.csv"
                f"?start={today - timedelta(days=364)}&end={today}"
            )
            started = time.perf_counter()
            response = browsers[big.pk].get(url)
            assert response.status_code == 200, response.status_code
            lines = nbytes = 0
            cut = False
            first_row = None
            # A chunk holds one or many rows (a page of them); no cell holds a raw line break here (metadata is JSON,
            # URLs have none), so rows are counted as lines, less the header.
            for chunk in response.streaming_content:
                lines += chunk.count(b"\n")
                nbytes += len(chunk)
                if first_row is None and lines >= 2:
                    first_row = time.perf_counter() - started
                if time.perf_counter() - started > EXPORT_SECONDS:
                    cut = True
                    break
            seconds = time.perf_counter() - started
            response.close()
            rows = max(lines - 1, 0)
            print(
                f"\nOccurrences CSV export, 365 days, {slug} ({counts[slug]:,} occurrences): {rows:,} rows, "
                f"{nbytes / 2**20:,.0f} MiB in {seconds:.1f} s: {rows / seconds:,.0f} rows/s; the first row after "
                f"{first_row or 0:.1f} s, then {(rows - 1) / max(seconds - (first_row or 0), 0.001):,.0f} rows/s"
                + (f" (read for {EXPORT_SECONDS} s, not to the end)" if cut else ""),
                flush=True,
            )
        else:
            print("\nOccurrences CSV export: no such view")

        if last:
            delete_measure(big=big, overview_url=pages(big)["overview, 30 d"][1], counts=counts)


if __name__ == "__main__":
    main()
