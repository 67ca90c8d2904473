"""Benchmark: triggerCustomEvent under gunicorn on PostgreSQL, from loopback.

Measures, on one server in one run:
  - a no-op view behind the same middleware (the baseline: what any request costs),
  - triggerCustomEvent, one event per request,
  - triggerCustomEvents, 100 events per request,
each as requests/s and events/s with p50/p99 latency, and prints the ratios against the targets:
single calls >= 0.4 x the no-op view, the batch >= 5 x the events/s of single calls, zero events lost.

Every request is the same HTTP POST with an API key and a JSON body (the no-op gets the single mutation's body).
The emails cycle through 2,000 contacts, so the first calls create their contact and later ones find it; the event
has no actions. Without INGEST_QUEUE_URL the server records each call inline, through the same ingester the queue
feeds (bench/collect_bench.py measures single calls with the queue on). The phases alternate over several rounds
so that a slow moment of the machine does not land on one of them. Zero lost: the events the database holds for the
benchmark's account equal the events the answers said were recorded. Afterwards it prints the CPU a call costs in
this process without HTTP, deletes its account and vacuums the tables it wrote (autovacuum may be off, and dead rows
slow later runs).

Run (PostgreSQL must be up; the database is created and migrated if needed):
    .venv/bin/python bench/graphql_bench.py
    .venv/bin/python bench/graphql_bench.py --database-url postgres://postgres@127.0.0.1:5432/paminga_api \\
        --port 8210 --workers 2 --threads 4 --concurrency 4 --rounds 3 --requests 1500 --batches 30
"""

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import database_create  # noqa: E402

BENCH_ACCOUNT = "bench-graphql"
BENCH_EVENT = "bench-signup"
SINGLE = "mutation($input: TriggerCustomEventInput!) { triggerCustomEvent(input: $input) }"
BATCH = "mutation($inputs: [TriggerCustomEventInput!]!) { triggerCustomEvents(inputs: $inputs) { ok } }"
BATCH_SIZE = 100
CONTACTS = 2000  # emails cycle through this many contacts: most requests find the contact, some create it


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/paminga_api")
    )
    parser.add_argument("--port", type=int, default=8210)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--concurrency", type=int, default=8, help="client processes, one connection each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1500, help="no-op and single requests per round")
    parser.add_argument("--batches", type=int, default=30, help="batch requests (100 events each) per round")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args()


# --- set-up, through Django in this process ----------------------------------------------------------------------


def django_setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")
    os.environ.setdefault("SECRET_KEY", "bench")
    # One loopback sender and one API key send everything: the abuse rate limits are not what is measured.
    os.environ.update(RATE_LIMIT_API_CALLS_PER_KEY="0", RATE_LIMIT_API_FAILURES_PER_ADDRESS="0")
    database_create(database_url)
    import django

    django.setup()


def prepare() -> str:
    """A fresh benchmark account with one custom event (no actions) and an API key; returns the key."""
    from django.core.management import call_command

    from custom_events.services import custom_event_create
    from paminga.models import Account
    from paminga.services import account_create, api_key_create

    call_command("migrate", verbosity=0, interactive=False)
    Account.objects.filter(slug=BENCH_ACCOUNT).delete()
    account = account_create(name="GraphQL benchmark", slug=BENCH_ACCOUNT)
    custom_event_create(account=account, name="Bench signup", slug=BENCH_EVENT, counts_as_conversion=True)
    return api_key_create(account=account, name="benchmark")[1]


def analyze() -> None:
    """Updates the planner's statistics of the tables the run writes, as autovacuum does once they have grown. The run
    starts from empty tables (the previous run's account was deleted and vacuumed), and a prepared statement planned
    for an empty table keeps scanning it whole as it grows: without this, and with autovacuum off, every look-up of a
    contact would read them all. It also makes the servers' connections plan their statements again."""
    from django.db import close_old_connections, connection

    from tracking.models import Contact, EventRecord

    close_old_connections()
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in (EventRecord, Contact))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")


def recorded_events() -> int:
    from django.db import close_old_connections

    from tracking.models import EventRecord

    close_old_connections()
    return EventRecord.objects.filter(account__slug=BENCH_ACCOUNT).count()


def cpu_breakdown(secret: str, calls: int = 300) -> dict:
    """Where a call's time goes: CPU milliseconds per call (per event for the batch), measured in this process through
    Django's test client (no HTTP, no waiting on other requests), so that the HTTP figures can be explained."""
    from django.test import Client, override_settings

    sys.path.insert(0, str(ROOT / "bench"))
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    ping = json.dumps({"query": "{ ping }"})

    def post(path, body):
        return client.post(path, body, content_type="application/json", **headers)

    parts = {
        "no-op view (through Django)": (1, lambda n: post("/bench/noop/", _single_body(n))),
        "GraphQL { ping } (Django, API key, GraphQL)": (1, lambda n: post("/graphql/", ping)),
        "triggerCustomEvent": (1, lambda n: post("/graphql/", _single_body(n))),
        "triggerCustomEvents, per event": (BATCH_SIZE, lambda n: post("/graphql/", _batch_body(n))),
    }
    figures = {}
    with override_settings(ROOT_URLCONF="graphql_bench_urls"):
        for label, (events, call) in parts.items():
            count = max(calls // events, 10)
            call(0)
            began = time.process_time()
            for n in range(count):
                call(n)
            figures[label] = round((time.process_time() - began) / (count * events) * 1000, 3)
    return figures


def cleanup() -> None:
    """Deletes the benchmark's account, then vacuums what it wrote: with autovacuum off or lagging behind, the dead
    rows of earlier runs would make every later run's look-ups and inserts slower (see also analyze())."""
    from django.db import connection

    from paminga.models import Account

    Account.objects.filter(slug=BENCH_ACCOUNT).delete()
    from automations.models import ActionRun
    from tracking.models import Contact, EventRecord

    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in (EventRecord, Contact, ActionRun))
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM {tables}")


# --- the server --------------------------------------------------------------------------------------------------


def start_server(args) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "DJANGO_SETTINGS_MODULE": "graphql_bench_settings",
        "DEBUG": "0",
        "CELERY_BROKER_URL": "",
        "REDIS_URL": "",
    }
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "paminga.wsgi:application",
        "--pythonpath",
        f"{ROOT},{ROOT / 'bench'}",
        "--bind",
        f"127.0.0.1:{args.port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(args.threads),
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    stop_server(server)
    raise SystemExit("gunicorn did not start within 30 s")


def stop_server(server: subprocess.Popen) -> None:
    # Only the server this script started: its own process group.
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


# --- the client --------------------------------------------------------------------------------------------------


def _single_body(n: int) -> bytes:
    return json.dumps(
        {
            "query": SINGLE,
            "variables": {
                "input": {
                    "slug": BENCH_EVENT,
                    "email": f"bench-{n % CONTACTS}@example.com",
                    "page_url": "https://example.com/signup",
                    "utm_source": "bench",
                    "marketing_channel": "PAID_SEARCH",
                    "metadata": {"plan": "pro", "seats": n % 50},
                }
            },
        }
    ).encode()


def _batch_body(n: int) -> bytes:
    inputs = [
        {
            "slug": BENCH_EVENT,
            "email": f"bench-{(n * BATCH_SIZE + i) % CONTACTS}@example.com",
            "page_url": "https://example.com/signup",
            "utm_source": "bench",
            "marketing_channel": "PAID_SEARCH",
            "metadata": {"plan": "pro", "seats": i % 50},
        }
        for i in range(BATCH_SIZE)
    ]
    return json.dumps({"query": BATCH, "variables": {"inputs": inputs}}).encode()


def _client(job):
    """One client process: `count` requests of one kind over one keep-alive connection."""
    port, secret, kind, start, count = job
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    path = "/bench/noop/" if kind == "noop" else "/graphql/"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, events, failures = [], 0, 0
    for n in range(start, start + count):
        body = _batch_body(n) if kind == "batch" else _single_body(n)
        began = time.perf_counter()
        try:
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            failures += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        latencies.append(time.perf_counter() - began)
        if response.status != 200:
            failures += 1
            continue
        data = json.loads(payload).get("data") or {}
        if kind == "single":
            events += 1 if data.get("triggerCustomEvent") is True else 0
            failures += 0 if data.get("triggerCustomEvent") is True else 1
        elif kind == "batch":
            ok = sum(1 for result in data.get("triggerCustomEvents") or [] if result["ok"])
            events += ok
            failures += BATCH_SIZE - ok
    conn.close()
    return latencies, events, failures


def run_phase(pool, args, secret, kind: str, total: int, offset: int) -> dict:
    per_client = [
        total // args.concurrency + (1 if i < total % args.concurrency else 0) for i in range(args.concurrency)
    ]
    jobs, start = [], offset
    for count in per_client:
        jobs.append((args.port, secret, kind, start, count))
        start += count
    began = time.perf_counter()
    results = pool.map(_client, jobs)
    elapsed = time.perf_counter() - began
    latencies = sorted(lat for r in results for lat in r[0])
    return {
        "requests": len(latencies),
        "events": sum(r[1] for r in results),
        "failures": sum(r[2] for r in results),
        "seconds": elapsed,
        "latencies": latencies,
    }


def merge(phases: list[dict]) -> dict:
    latencies = sorted(lat for p in phases for lat in p["latencies"])
    seconds = sum(p["seconds"] for p in phases)
    requests = sum(p["requests"] for p in phases)
    events = sum(p["events"] for p in phases)
    return {
        "requests": requests,
        "events": events,
        "failures": sum(p["failures"] for p in phases),
        "seconds": round(seconds, 3),
        "requests_per_s": round(requests / seconds, 1),
        "events_per_s": round(events / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
    }


def main() -> int:
    args = parse_args()
    django_setup(args.database_url)
    secret = prepare()
    server = start_server(args)
    try:
        with multiprocessing.get_context("fork").Pool(args.concurrency) as pool:
            # Warm-up: every worker thread opens its database connection and fills its caches.
            run_phase(pool, args, secret, "noop", 200, 0)
            run_phase(pool, args, secret, "single", 200, 0)
            run_phase(pool, args, secret, "batch", args.concurrency, 0)
            analyze()
            before = recorded_events()
            phases = {"noop": [], "single": [], "batch": []}
            for r in range(args.rounds):
                phases["noop"].append(run_phase(pool, args, secret, "noop", args.requests, 0))
                phases["single"].append(run_phase(pool, args, secret, "single", args.requests, r * args.requests))
                phases["batch"].append(run_phase(pool, args, secret, "batch", args.batches, r * args.batches))
            stored = recorded_events() - before
    finally:
        stop_server(server)
    breakdown = cpu_breakdown(secret)
    noop, single, batch = (merge(phases[k]) for k in ("noop", "single", "batch"))
    answered = single["events"] + batch["events"]
    report = {
        "config": {k: getattr(args, k) for k in ("workers", "threads", "concurrency", "rounds", "requests", "batches")},
        "noop": noop,
        "single": single,
        "batch": batch,
        "single_vs_noop": round(single["requests_per_s"] / noop["requests_per_s"], 3),
        # Each round's own ratio: on a shared machine, how far one slow moment moves the figure.
        "single_vs_noop_per_round": [
            round((s["requests"] / s["seconds"]) / (n["requests"] / n["seconds"]), 3)
            for n, s in zip(phases["noop"], phases["single"], strict=True)
        ],
        "batch_vs_single_events": round(batch["events_per_s"] / single["events_per_s"], 2),
        "events_answered_recorded": answered,
        "events_stored": stored,
        "lost": answered - stored,
        "failed": single["failures"] + batch["failures"] + noop["failures"],
        "cpu_ms_per_call_in_process": breakdown,
    }
    cleanup()
    _print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    met = report["single_vs_noop"] >= 0.4 and report["batch_vs_single_events"] >= 5 and report["lost"] == 0
    return 0 if met and report["failed"] == 0 else 1


def _print(report: dict) -> None:
    c = report["config"]
    print(
        f"gunicorn gthread {c['workers']} workers x {c['threads']} threads, {c['concurrency']} client connections, "
        f"{c['rounds']} rounds, PostgreSQL, loopback"
    )
    print(f"{'':34}{'req/s':>10}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}{'failed':>8}")
    for key, label in (
        ("noop", "no-op view (baseline)"),
        ("single", "triggerCustomEvent"),
        ("batch", f"triggerCustomEvents ({BATCH_SIZE}/req)"),
    ):
        row = report[key]
        print(
            f"{label:34}{row['requests_per_s']:>10}{row['events_per_s'] if key != 'noop' else '-':>10}"
            f"{row['p50_ms']:>9}{row['p99_ms']:>9}{row['requests']:>10}{row['failures']:>8}"
        )
    print(
        f"single / no-op (req/s):           {report['single_vs_noop']:>6}  target >= 0.4"
        f"  (rounds: {', '.join(str(r) for r in report['single_vs_noop_per_round'])})"
    )
    print(f"batch / single (events/s):        {report['batch_vs_single_events']:>6}  target >= 5")
    print(
        f"events answered as recorded:      {report['events_answered_recorded']}, stored: {report['events_stored']}, "
        f"lost: {report['lost']}  target 0"
    )
    print("CPU per call (per event for the batch), in one process without HTTP (ms):")
    for label, ms in report["cpu_ms_per_call_in_process"].items():
        print(f"  {label:52}{ms:>8}")


if __name__ == "__main__":
    sys.exit(main())
