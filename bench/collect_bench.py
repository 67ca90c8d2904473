#!/usr/bin/env python
"""Benchmark of capture and ingestion: the collect endpoint against a no-op Django view and a bare durable XADD,
under gunicorn on PostgreSQL with the ingest queue on, then the ingester draining what was accepted.

    .venv/bin/python bench/collect_bench.py                       # the documented configuration
    .venv/bin/python bench/collect_bench.py --sweep               # compare gunicorn configurations
    .venv/bin/python bench/collect_bench.py --workers 4 --worker-class sync

One gunicorn serves every endpoint with the same settings and middleware, and a private redis-server (appendonly,
appendfsync always by default; --fsync everysec to compare) is the ingest queue. wrk (bench/collect.lua) drives each
endpoint with realistic hits at 32 connections: many visitors, impressions and custom events mixed, unique hit ids,
and a few deliberate resends of a hit (as the beacon does after a lost answer). Printed: hits/s (each hit is one
impression or one custom event), p50 and p99 latency, the CPU per request of the workers and of PostgreSQL, and the
ratios of collect to the no-op view and to the bare XADD view (the no-op plus one durable XADD: the least a request
that queues a hit costs). Then gunicorn is stopped (it finishes what is in flight), the ingester (one consumer, in
this process) drains the queue and its rate is printed, and the database is checked: every hit answered 2xx is
stored exactly once, and nothing is stored that was not sent. Exit status 1 when a hit was lost or duplicated.

The database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/paminga_tracking) is created if
missing, EMPTIED first and dropped at the end (unless --keep-database): give the benchmark a database of its own.
Needs wrk (apt-get install wrk), redis-server and PostgreSQL.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import database_create, database_drop, free_port  # noqa: E402

LUA = ROOT / "bench" / "collect.lua"
TRIGGER_LUA = ROOT / "bench" / "trigger.lua"
SLUGS = ("watched-product-video", "visited-pricing-page", "requested-demo", "downloaded-whitepaper-q1")
# (worker class, workers, threads per worker)
SWEEP = [("sync", 2, 1), ("sync", 4, 1), ("gthread", 2, 4), ("gthread", 4, 4), ("gthread", 4, 8)]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/paminga_tracking"),
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "8180")))
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=12, help="seconds measured per endpoint")
    parser.add_argument("--pairs", type=int, default=3, help="alternations of no-op and collect runs")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--fsync", default="always", choices=["always", "everysec"], help="the queue's appendfsync")
    parser.add_argument("--keep-database", action="store_true", help="leave the benchmark's database afterwards")
    parser.add_argument("--sweep", action="store_true", help="measure every configuration in SWEEP")
    parser.add_argument(
        "--configs", help="configurations to compare, e.g. sync:2,gthread:2x4 (worker class:workers[xthreads])"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the configurations this many times, in turn (load on a shared "
        "machine changes; alternating rounds keep the comparison fair)",
    )
    return parser.parse_args()


def start_queue(fsync: str) -> subprocess.Popen:
    """A private redis-server on a free port as the ingest queue, durable as in docker-compose."""
    import tempfile

    port = free_port()
    directory = tempfile.mkdtemp(prefix="collect-bench-redis-")
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory]
    command += ["--appendonly", "yes", "--appendfsync", fsync]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    process.directory = directory  # its append-only file: removed with the server (stop_redis)
    os.environ["INGEST_QUEUE_URL"] = f"redis://127.0.0.1:{port}/0"
    import redis

    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            return process
        except redis.RedisError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def django_setup(database_url: str):
    database_create(database_url)
    os.environ.update(
        DATABASE_URL=database_url, DEBUG="0", SECRET_KEY="bench", CELERY_BROKER_URL="", REDIS_URL="", LOG_LEVEL="ERROR"
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("flush", verbosity=0, interactive=False)
    from custom_events.services import custom_event_create
    from paminga.services import account_create

    account = account_create(name="Bench", slug="bench", domains=["www.bench.test"])
    from paminga.services import api_key_create

    os.environ["BENCH_API_KEY"] = api_key_create(account=account, name="bench")[1]
    for i, slug in enumerate(SLUGS):
        name = slug.replace("-", " ").title()
        custom_event_create(account=account, name=name, slug=slug, counts_as_conversion=i == 2)
    return account


class Gunicorn:
    def __init__(self, *, port: int, worker_class: str, workers: int, threads: int, database_url: str):
        self.url = f"http://127.0.0.1:{port}"
        self.label = f"{worker_class} {workers}" + (f"x{threads}" if worker_class == "gthread" else "")
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "BENCH_NOOP_VIEW": "1",
            "INGEST_QUEUE_URL": os.environ["INGEST_QUEUE_URL"],
            # One loopback address and one site key send everything: the abuse limits are not what is measured.
            "RATE_LIMIT_COLLECT_PER_ADDRESS": "0",
            "RATE_LIMIT_COLLECT_PER_SITE_KEY": "0",
            "RATE_LIMIT_API_CALLS_PER_KEY": "0",
            "RATE_LIMIT_API_FAILURES_PER_ADDRESS": "0",
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "PYTHONWARNINGS": "ignore",
        }
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "paminga.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            f"--worker-class={worker_class}",
            f"--threads={threads}",
            "--worker-tmp-dir=/dev/shm",
            "--graceful-timeout=30",
            "--log-level=warning",
        ]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("gunicorn did not start")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the workers: per request, it does not depend on what else the
        machine is running, unlike a rate."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:  # the parent pid: a worker
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def database_cpu_seconds() -> float:
        """CPU time used so far by PostgreSQL's processes (on the same machine, it shares the cores with gunicorn)."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            name, fields = text.split("(", 1)[1].rsplit(")", 1)
            if name.startswith("postgres"):
                fields = fields.split()
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self):
        """SIGTERM: gunicorn finishes the requests in flight, then exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


def wrk(*, url: str, run: str, args, duration: int, ids_file: Path | None, script: Path = LUA) -> dict:
    env = {
        **os.environ,
        "BENCH_RUN": run,
        "BENCH_VISITOR_PREFIX": f"b{os.getpid()}",
        "BENCH_VISITORS": str(args.visitors),
        "BENCH_SLUGS": ",".join(SLUGS),
        "BENCH_RESEND": "0.02",
        "BENCH_IDS_FILE": str(ids_file) if ids_file else "",
    }
    command = [
        "wrk",
        f"-t{args.wrk_threads}",
        f"-c{args.connections}",
        f"-d{duration}s",
        "--timeout=10s",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result = {key: int(value) for key, value in (part.split("=") for part in line.split()[1:])}
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def verify(*, account, run: str, ids_file: Path) -> dict:
    """Every id answered 200 is stored exactly once; every stored id was generated by this run."""
    from tracking.models import EventRecord, Impression, RecordedKey

    accepted, generated = set(), {}
    for line in ids_file.read_text().splitlines():
        if line.startswith("#generated"):
            _, thread, count = line.split()
            generated[thread] = int(count)
        elif line:
            accepted.add(line)
    # Each hit's key (page:<id> or beacon:<id>) is unique and names the row recorded under it: a hit recorded twice
    # would be a row of the run's account that no key names.
    impressions = RecordedKey.objects.filter(account=account, key__startswith=f"page:{run}-")
    events = RecordedKey.objects.filter(account=account, key__startswith=f"beacon:{run}-")
    stored = [
        key.split(":", 1)[1]
        for key in [*impressions.values_list("key", flat=True), *events.values_list("key", flat=True)]
    ]
    named = set(RecordedKey.objects.filter(account=account).values_list("record_id", flat=True))
    rows = [*Impression.objects.filter(account=account).values_list("pk", flat=True)]
    rows += EventRecord.objects.filter(account=account).values_list("pk", flat=True)
    duplicated = len(stored) - len(set(stored)) + sum(1 for pk in rows if pk not in named)
    phantom = [s for s in stored if int(s.rsplit("-", 1)[1]) > generated.get(s.split("-")[-2], 0)]
    return {
        "accepted": len(accepted),
        "stored": len(set(stored)),
        "lost": len(accepted - set(stored)),
        "duplicated": duplicated,
        "phantom": len(phantom),
        "impressions": impressions.count(),
        "events": events.count(),
    }


def postgres_commits_per_second(database_url: str, connections: int, seconds: float = 3.0) -> float:
    """The database's own ceiling: single-row INSERT transactions per second at the benchmark's concurrency."""
    import threading

    import psycopg

    url = database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS collect_bench_commits (id bigserial PRIMARY KEY, v text)")
    counts = [0] * connections
    stop = time.monotonic() + seconds

    def work(i):
        with psycopg.connect(url, autocommit=True) as conn:
            while time.monotonic() < stop:
                conn.execute("INSERT INTO collect_bench_commits (v) VALUES ('x')")
                counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute("DROP TABLE collect_bench_commits")
    return sum(counts) / seconds


def _combine(runs: list[dict]) -> dict:
    """One figure for several wrk runs of one endpoint: the rate over their total time, the median p50 and p99."""
    combined = {key: sum(run[key] for run in runs) for key in runs[0] if key not in ("rate", "p50_us", "p99_us")}
    combined["rate"] = combined["requests"] / (combined["duration_us"] / 1e6)
    combined["cpu_ms"] = combined["cpu"] * 1000 / combined["requests"]
    combined["db_cpu_ms"] = combined["db_cpu"] * 1000 / combined["requests"]
    combined["p50_us"] = statistics.median(run["p50_us"] for run in runs)
    combined["p99_us"] = statistics.median(run["p99_us"] for run in runs)
    return combined


def analyze() -> None:
    """Updates the planner's statistics of the tables hits write, as autovacuum does once they have grown (it may be
    off on a test machine). The benchmark starts from empty tables; a statement planned for an empty table keeps
    scanning it whole as it grows. ANALYZE also makes the server's connections plan their prepared statements again."""
    from django.db import close_old_connections, connection

    from tracking.models import Contact, EventRecord, Impression, Session, Visitor

    close_old_connections()
    tables = ", ".join(
        connection.ops.quote_name(m._meta.db_table) for m in (Contact, Visitor, Session, Impression, EventRecord)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")


def measure(args, account, *, worker_class: str, workers: int, threads: int, index: int) -> dict:
    """Warm up, then alternate no-op and collect runs (--pairs of them), so that both endpoints see the same
    machine: on a shared machine the load of other processes drifts within a minute."""
    server = Gunicorn(
        port=args.port, worker_class=worker_class, workers=workers, threads=threads, database_url=args.database_url
    )
    collect_url = f"{server.url}/collect/{account.site_key}"
    noop_url = f"{server.url}/bench/noop"
    insert_url = f"{server.url}/bench/xadd/{account.site_key}"
    api_url = f"{server.url}/graphql/"
    seconds = max(1, round(args.duration / args.pairs))
    noops, inserts, collects, apis, runs = [], [], [], [], []

    def measured(url: str, run: str, ids_file: Path | None, script: Path = LUA) -> dict:
        cpu, db_cpu = server.cpu_seconds(), server.database_cpu_seconds()
        result = wrk(url=url, run=run, args=args, duration=seconds, ids_file=ids_file, script=script)
        result["cpu"] = server.cpu_seconds() - cpu
        result["db_cpu"] = server.database_cpu_seconds() - db_cpu
        return result

    try:
        # Warm every path (imports, connections, caches) before measuring.
        for url in (noop_url, insert_url, collect_url):
            wrk(url=url, run=f"w{index}", args=args, duration=2, ids_file=None)
        wrk(url=api_url, run=f"w{index}", args=args, duration=2, ids_file=None, script=TRIGGER_LUA)
        analyze()
        for pair in range(args.pairs):
            run = f"c{index}p{pair}"
            ids_file = Path(f"/tmp/collect_bench_ids_{os.getpid()}_{run}.txt")
            noops.append(measured(noop_url, f"n{index}p{pair}", None))
            inserts.append(measured(insert_url, f"i{index}p{pair}", None))
            collects.append(measured(collect_url, run, ids_file))
            apis.append(measured(api_url, f"a{index}p{pair}", None, TRIGGER_LUA))
            runs.append((run, ids_file))
    finally:
        server.stop()
    drained = drain()
    checks = []
    for run, ids_file in runs:
        checks.append(verify(account=account, run=run, ids_file=ids_file))
        ids_file.unlink(missing_ok=True)
    check = {key: sum(c[key] for c in checks) for key in checks[0]}
    return {
        "label": server.label,
        "noop": _combine(noops),
        "insert": _combine(inserts),
        "collect": _combine(collects),
        "api": _combine(apis),
        "check": check,
        "drain": drained,
    }


def drain() -> dict:
    """Runs the ingester (one consumer, this process) until the queue is empty; its rate is items per second."""
    from tracking import queue
    from tracking.consumer import Consumer

    waiting = sum(s.waiting for s in queue.queue_status())
    started = time.monotonic()
    consumer = Consumer(name="bench")
    consumer.run(until_idle=True)
    seconds = time.monotonic() - started
    return {"items": consumer.recorded, "waiting": waiting, "seconds": seconds, "rate": consumer.recorded / seconds}


def report(row: dict) -> None:
    noop, insert, collect, check = row["noop"], row["insert"], row["collect"], row["check"]
    print(f"\n== gunicorn {row['label']} ==")
    print(
        f"{'':<22}{'hits/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'CPU ms/req':>12}{'DB CPU ms':>11}{'non-2xx':>9}"
        f"{'socket err':>11}"
    )
    api = row["api"]
    for name, r in (
        ("no-op Django view", noop),
        ("bare durable XADD", insert),
        ("collect endpoint", collect),
        ("triggerCustomEvent", api),
    ):
        print(
            f"{name:<22}{r['rate']:>10.0f}{r['p50_us'] / 1000:>10.2f}{r['p99_us'] / 1000:>10.2f}{r['cpu_ms']:>12.2f}"
            f"{r['db_cpu_ms']:>11.2f}{r['non2xx']:>9}{r['socket_errors']:>11}"
        )
    print(
        f"ratio collect / no-op: {collect['rate'] / noop['rate']:.2f} in hits/s (target >= 0.45); "
        f"{noop['cpu_ms'] / collect['cpu_ms']:.2f} in server CPU per request"
    )
    print(
        f"ratio collect / bare XADD: {collect['rate'] / insert['rate']:.2f} (target >= 0.9); "
        f"bare XADD / no-op {insert['rate'] / noop['rate']:.2f}"
    )
    print(f"ratio triggerCustomEvent / no-op: {api['rate'] / noop['rate']:.2f} (target >= 0.5)")
    d = row["drain"]
    print(
        f"ingester: {d['items']} items recorded in {d['seconds']:.1f} s = {d['rate']:.0f} hits/s into PostgreSQL "
        f"(one consumer, batches of up to 500; target >= 10,000)"
    )
    print(
        f"stored: {check['impressions']} impressions + {check['events']} custom events; "
        f"answered 2xx: {check['accepted']} hit ids ({collect['duplicate']} answers were duplicates of "
        f"{collect['resent']} deliberate resends); lost {check['lost']}, duplicated {check['duplicated']}, "
        f"stored but never sent {check['phantom']}"
    )


def stop_redis(process: subprocess.Popen) -> None:
    """Stops the benchmark's redis-server and removes its files."""
    process.terminate()
    process.wait(timeout=30)
    shutil.rmtree(process.directory, ignore_errors=True)


def main():
    args = parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    if not args.database_url.startswith("postgres"):
        raise SystemExit("The benchmark runs on PostgreSQL: set BENCH_DATABASE_URL or --database-url")
    redis_server = start_queue(args.fsync)
    try:
        run_all(args)
    finally:
        stop_redis(redis_server)
        if not args.keep_database:
            from django.db import connections

            connections.close_all()
            database_drop(args.database_url)


def run_all(args):
    account = django_setup(args.database_url)
    configs = [(args.worker_class, args.workers, args.threads)]
    if args.sweep:
        configs = SWEEP
    if args.configs:
        configs = []
        for item in args.configs.split(","):
            worker_class, _, size = item.partition(":")
            workers, _, threads = size.partition("x")
            configs.append((worker_class, int(workers), int(threads or 1)))
    configs = configs * args.rounds
    print(
        f"collect benchmark: {args.connections} connections, {args.duration}s per run, wrk -t{args.wrk_threads}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, database {args.database_url.rsplit('/', 1)[-1]}"
    )
    commits = postgres_commits_per_second(args.database_url, args.connections)
    print(f"PostgreSQL alone: {commits:.0f} single-row transactions/s at {args.connections} connections")
    rows = []
    for index, (worker_class, workers, threads) in enumerate(configs):
        row = measure(args, account, worker_class=worker_class, workers=workers, threads=threads, index=index)
        report(row)
        rows.append(row)
    if len(rows) > 1:
        print("\nsummary (median over rounds):")
        for label in dict.fromkeys(row["label"] for row in rows):
            runs = [row for row in rows if row["label"] == label]
            collect = statistics.median(row["collect"]["rate"] for row in runs)
            noop = statistics.median(row["noop"]["rate"] for row in runs)
            ratio = statistics.median(row["collect"]["rate"] / row["noop"]["rate"] for row in runs)
            p99 = statistics.median(row["collect"]["p99_us"] / 1000 for row in runs)
            cpu = statistics.median(row["collect"]["cpu_ms"] for row in runs)
            print(
                f"  {label:<14} collect {collect:>6.0f}/s  no-op {noop:>6.0f}/s  ratio {ratio:.2f}  "
                f"p99 collect {p99:.1f} ms  CPU {cpu:.2f} ms/hit  ({len(runs)} rounds)"
            )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes on the machine skew every figure)")
    failed = any(row["check"]["lost"] or row["check"]["duplicated"] or row["check"]["phantom"] for row in rows)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
