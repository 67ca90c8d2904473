#!/usr/bin/env python
"""Can heavy API calls starve beacon hits? Collect latency, quiet and under report load, on gunicorn and PostgreSQL.

    .venv/bin/python bench/starvation_bench.py
    .venv/bin/python bench/starvation_bench.py --rate 40 --duration 10 --report-clients 16

A collect client sends beacon hits at a steady rate (open loop: each hit leaves at its scheduled time, and its
latency counts from then, so a stalled server is not hidden by a client that waits for it). Each configuration is
measured twice: quiet (hits only), then loaded (hits while --report-clients clients each send, back to back, the
heaviest report query the cost limits allow: as many whole-account reports as the budget admits, under aliases,
with one API key whose per-key rate limit is turned off for the run).

Two configurations, as docs/operations.md describes them:
- shared: one gunicorn (4 workers x 4 threads, gthread) serves hits and API calls alike (docker-compose before the
  capture service);
- split: the API on that gunicorn, hits on a capture gunicorn of their own (2 workers x 8 threads), as nginx routes
  them in docker-compose. The API's gunicorn runs at a lower CPU priority (nice 10; docker-compose gives it fewer
  cpu_shares), so that reports saturating the CPUs leave capture and PostgreSQL theirs.

Printed: collect p50/p99 quiet and loaded, the loaded/quiet p99 ratio per configuration (the target for split: at
most 2), and the report throughput. Everything runs on loopback, with free ports chosen by the system, against a
PostgreSQL database the script creates (paminga_starvation_<pid>) and drops at the end; bounded in time (about a
minute and a half) and in requests.
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
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import database_create, database_drop, free_port  # noqa: E402

PYTHON = sys.executable
WEB_NICE = 10


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--server-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="the PostgreSQL server (its URL; the database part is replaced by the benchmark's own)",
    )
    parser.add_argument("--rate", type=float, default=40.0, help="beacon hits per second")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--report-clients", type=int, default=16)
    parser.add_argument("--events", type=int, default=30000, help="recorded events seeded for the reports")
    return parser.parse_args()


# --- the database --------------------------------------------------------------------------------------------


def _database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + name))


# --- the servers ---------------------------------------------------------------------------------------------


def _environment(database_url: str) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "paminga.settings",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "starvation-bench",
        "DEBUG": "0",
        "STATIC_MANIFEST": "0",
        "CELERY_BROKER_URL": "",
        "REDIS_URL": "",
        "CACHE_URL": "locmemcache://bench",
        "LOG_LEVEL": "ERROR",
        # The load must be the heaviest one key can send: no per-key call limit. The hits all come from loopback, so
        # the per-address collect limit is off too; the cost limits stay on (they decide what "heaviest" is).
        "RATE_LIMIT_API_CALLS_PER_KEY": "0",
        "RATE_LIMIT_COLLECT_PER_ADDRESS": "0",
        "RATE_LIMIT_COLLECT_PER_SITE_KEY": "0",
    }


def _start(env: dict, workers: int, threads: int, nice: int = 0) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [
        "nice", "-n", str(nice), PYTHON, "-m", "gunicorn", "paminga.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads), "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server, port
        except OSError:
            time.sleep(0.2)
    _stop(server)
    raise SystemExit(f"gunicorn did not start on port {port}")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- the clients ---------------------------------------------------------------------------------------------


def _collect_client(port: int, site_key: str, rate: float, duration: float, results) -> None:
    """Sends hits on schedule from a few threads (so one slow answer does not delay the next hit's departure)."""
    count = int(rate * duration)
    start = time.monotonic() + 0.2
    latencies, statuses, lock = [], {}, threading.Lock()
    next_index = iter(range(count))

    def run():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            scheduled = start + index / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            hit = {"type": "impression", "id": uuid.uuid4().hex[:20], "visitor": f"visitor-{index % 500:05d}",
                   "url": "https://bench.test/", "title": "Bench"}  # fmt: skip
            try:
                connection.request(
                    "POST", f"/collect/{site_key}", json.dumps(hit),
                    {"Content-Type": "text/plain", "Origin": "https://bench.test"},
                )  # fmt: skip
                response = connection.getresponse()
                response.read()
                status = response.status
            except OSError:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            with lock:
                latencies.append(time.monotonic() - scheduled)
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=run) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put({"latencies": latencies, "statuses": statuses})


def _report_client(port: int, secret: str, query: str, stop_at: float, results) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = json.dumps({"query": query})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"}
    done, errors, seconds = 0, 0, []
    while time.monotonic() < stop_at:
        began = time.monotonic()
        connection.request("POST", "/graphql/", body, headers)
        response = connection.getresponse()
        answer = response.read()
        seconds.append(time.monotonic() - began)
        if response.status != 200 or b'"errors"' in answer:
            errors += 1
        done += 1
    results.put({"done": done, "errors": errors, "seconds": seconds})


def _report_load(port: int, secret: str, query: str, clients: int, duration: float, results) -> None:
    stop_at = time.monotonic() + duration + 0.5
    threads = [
        threading.Thread(target=_report_client, args=(port, secret, query, stop_at, results)) for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(args, collect_port, api_port, site_key, secret, query, loaded: bool, warm: bool = False) -> dict:
    """Collect latency over one run; with `warm`, a short run (3 s) whose figures are thrown away."""
    if warm:
        args = argparse.Namespace(**{**vars(args), "duration": 3.0})
    context = multiprocessing.get_context("spawn")
    collected, reported = context.Queue(), context.Queue()
    load = None
    if loaded:
        load = context.Process(
            target=_report_load, args=(api_port, secret, query, args.report_clients, args.duration + 1, reported)
        )
        load.start()
        time.sleep(1.0)  # every report client is busy before the first hit leaves
    collector = context.Process(
        target=_collect_client, args=(collect_port, site_key, args.rate, args.duration, collected)
    )
    collector.start()
    hits = collected.get(timeout=args.duration + 120)
    collector.join()
    reports = []
    if load is not None:
        reports = [reported.get(timeout=120) for _ in range(args.report_clients)]
        load.join()
    latencies = hits["latencies"]
    return {
        "p50": statistics.median(latencies) * 1000,
        "p99": _percentile(latencies, 0.99) * 1000,
        "statuses": hits["statuses"],
        "reports": sum(r["done"] for r in reports),
        "report_errors": sum(r["errors"] for r in reports),
        "report_p50": statistics.median([s for r in reports for s in r["seconds"]]) * 1000 if reports else None,
    }


# --- set-up --------------------------------------------------------------------------------------------------


SETUP = """
import django, json
django.setup()
from django.conf import settings
from paminga.models import Account
from paminga.services import api_key_create
account = Account.objects.get(slug="demo")
account.domains = ["bench.test"]
account.save()
print(json.dumps({"site_key": account.site_key, "secret": api_key_create(account=account, name="bench")[1],
                  "budget": settings.GRAPHQL_MAX_COST}))
"""


def set_up(env: dict, events: int) -> dict:
    def manage(*command):
        subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)

    manage("migrate", "--noinput")
    manage("seed_demo")
    manage("seed_demo_data", "--events", str(events), "--account", "demo", "--days", "90")
    output = subprocess.run([PYTHON, "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def heaviest_query(budget: int) -> str:
    from paminga.graphql_limits import FIELD_COSTS

    fields = (
        "start end events { slug fires unique_contacts unique_visitors conversions attributed_conversions"
        " daily { day fires conversions } } all_events { fires unique_contacts unique_visitors conversions }"
    )
    count = max(1, budget // FIELD_COSTS["Query.custom_events_report"])
    return "{ " + " ".join(f"r{n}: custom_events_report {{ {fields} }}" for n in range(count)) + " }"


def main() -> None:
    args = parse_args()
    name = f"paminga_starvation_{os.getpid()}"
    database_url = _database_url(args.server_url, name)
    database_create(database_url, fresh=True)
    servers = []
    try:
        env = _environment(database_url)
        print(f"Setting up {name}: migrations and {args.events} events ...", flush=True)
        seeded = set_up(env, args.events)
        query = heaviest_query(seeded["budget"])
        results = {}
        # web runs at a lower CPU priority (docker-compose: cpu_shares), so that when reports saturate the CPUs the
        # capture service and PostgreSQL still get theirs.
        web, web_port = _start(env, 4, 4, nice=WEB_NICE)
        servers.append(web)
        capture, capture_port = _start(env, 2, 8)
        servers.append(capture)
        # Warm-up, not measured: every worker thread's first requests pay imports, connections and caches.
        print("  warming up ...", flush=True)
        for port in (web_port, capture_port):
            measure(
                args, port, web_port, seeded["site_key"], seeded["secret"], query, loaded=port == web_port, warm=True
            )
        for config, collect_port in (("shared", web_port), ("split", capture_port)):
            for loaded in (False, True):
                label = f"{config}/{'loaded' if loaded else 'quiet'}"
                print(f"  measuring {label} ...", flush=True)
                results[label] = measure(
                    args, collect_port, web_port, seeded["site_key"], seeded["secret"], query, loaded
                )
        cores = os.cpu_count()
        print()
        print(
            f"Collect at {args.rate:g} hits/s for {args.duration:g} s; load: {args.report_clients} clients, each "
            f"sending {query.count('custom_events_report')} aliased custom_events_report per request (cost budget "
            f"{seeded['budget']}), {args.events} events; {cores} CPU(s), PostgreSQL on loopback."
        )
        print(
            f"web: gunicorn gthread 4 workers x 4 threads at nice {WEB_NICE}; "
            "capture: gunicorn gthread 2 workers x 8 threads at nice 0."
        )
        print(f"{'configuration':<16}{'p50 ms':>9}{'p99 ms':>9}{'statuses':>22}{'reports':>9}{'report p50 ms':>15}")
        for label, r in results.items():
            statuses = ",".join(f"{k}:{v}" for k, v in sorted(r["statuses"].items()))
            report_p50 = f"{r['report_p50']:.0f}" if r["report_p50"] is not None else "-"
            print(f"{label:<16}{r['p50']:>9.1f}{r['p99']:>9.1f}{statuses:>22}{r['reports']:>9}{report_p50:>15}")
        for config in ("shared", "split"):
            quiet, loaded = results[f"{config}/quiet"], results[f"{config}/loaded"]
            p50, p99 = loaded["p50"] / quiet["p50"], loaded["p99"] / quiet["p99"]
            print(f"{config}: loaded/quiet p50 {p50:.2f}x, p99 {p99:.2f}x")
        ratio = results["split/loaded"]["p99"] / results["split/quiet"]["p99"]
        print(f"split p99 within 2x of quiet: {'yes' if ratio <= 2 else 'NO'} ({ratio:.2f}x)")
    finally:
        for server in servers:
            _stop(server)
        database_drop(database_url)


if __name__ == "__main__":
    main()
