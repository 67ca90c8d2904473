"""Collect throughput with the data-quality checks on, against off, in the same run.

    .venv/bin/python bench/quality_bench.py                    # 6 rounds of 1,500 hits per side; about a minute
    .venv/bin/python bench/quality_bench.py --rounds 10 --hits 3000

Two accounts, alike but for the checks: "off" has the bot filter switched off and its events declare no metadata
schema; "on" filters bots (every hit's user agent is checked, through the per-process LRU) and its events declare a
10-property metadata schema in `enforce` mode (every event's metadata is checked by the ingester). The same hits go
to both: 60% page views, 40% custom events with 10 metadata properties that follow the schema (the common case: a
violation adds one event debugger write), from 1,000 visitors with 20 browsers' user agents. Each hit goes through
Django's whole request handler and middleware to the collect view, which records it inline (no queue), on
PostgreSQL.

Rounds alternate off/on so that drift (the database growing, the machine's other load) falls on both. It prints
hits/s and CPU per hit of this process (the Django side; the database's own CPU is not in it) per side, and the
ratio on/off, whose target is 0.95 or more. It also times the two checks alone.

It creates its own database (`paminga_quality_bench` on BENCH_POSTGRES_URL, default
postgres://postgres@127.0.0.1:5432/postgres, loopback) and drops it at the end (--keep keeps it).
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import database_create, database_drop  # noqa: E402

DB_NAME = "paminga_quality_bench"
SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DATABASE_URL = SERVER.rsplit("/", 1)[0] + "/" + DB_NAME

SCHEMA = [
    {"name": "planTier", "type": "string", "required": True, "allowed_values": ["basic", "pro", "enterprise"]},
    {"name": "seats", "type": "number", "required": True},
    {"name": "trial", "type": "boolean"},
    {"name": "videoTitle", "type": "string"},
    {"name": "percentWatched", "type": "number"},
    {"name": "features", "type": "string list", "allowed_values": ["sso", "api", "audit", "export"]},
    {"name": "region", "type": "string", "allowed_values": ["eu", "us", "apac"]},
    {"name": "referrerCampaign", "type": "string"},
    {"name": "annual", "type": "boolean"},
    {"name": "price", "type": "number"},
]
BROWSERS = (
    [
        f"Mozilla/5.0 ({os_}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"
        for os_ in ("Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7", "X11; Linux x86_64")
        for v in (129, 130, 131, 132)
    ]
    + [
        f"Mozilla/5.0 ({os_}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
        for os_ in ("Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 14.5")
        for v in (132, 133)
    ]
    + [
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
        "Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
        "Safari/605.1.15",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile "
        "Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
        "Safari/537.36 Edg/131.0.0.0",
    ]
)


def metadata(rng: random.Random) -> dict:
    return {
        "planTier": rng.choice(["basic", "pro", "enterprise"]),
        "seats": rng.randint(1, 500),
        "trial": rng.random() < 0.3,
        "videoTitle": "Product Overview",
        "percentWatched": round(rng.random() * 100, 1),
        "features": rng.sample(["sso", "api", "audit", "export"], 2),
        "region": rng.choice(["eu", "us", "apac"]),
        "referrerCampaign": "spring-launch",
        "annual": rng.random() < 0.5,
        "price": 49.0,
    }


def hits(rng: random.Random, count: int, prefix: str) -> list[tuple[str, bytes]]:
    """(user agent, body) per hit; ids unique per side and round."""
    out = []
    for n in range(count):
        visitor = f"visitor-{rng.randrange(1000):05d}"
        body = {"id": f"{prefix}-{n:07d}", "visitor": visitor, "url": f"https://www.example.com/p{rng.randrange(20)}"}
        if rng.random() < 0.6:
            body |= {"type": "impression", "title": "Pricing", "referrer": ""}
        else:
            body |= {"type": "event", "slug": f"event-{rng.randrange(4)}", "metadata": metadata(rng)}
        out.append((BROWSERS[rng.randrange(len(BROWSERS))], json.dumps(body).encode()))
    return out


def run(client, account, batch) -> tuple[float, float]:
    """Wall-clock seconds and this process's CPU seconds for posting the batch."""
    url = f"/collect/{account.site_key}"
    wall, cpu = time.perf_counter(), time.process_time()
    for user_agent, body in batch:
        response = client.post(
            url, body, content_type="text/plain", HTTP_USER_AGENT=user_agent, HTTP_ORIGIN="https://www.example.com"
        )
        if response.status_code != 200 or response.json()["status"] != "recorded":
            raise SystemExit(f"unexpected answer {response.status_code}: {response.content[:200]!r}")
    return time.perf_counter() - wall, time.process_time() - cpu


def checks_alone() -> None:
    """The two checks by themselves, in microseconds per call."""
    from crawlerdetect import CrawlerDetect

    from custom_events.metadata_schema import metadata_schema_normalize, metadata_violations
    from tracking.bots import user_agent_is_bot

    schema = metadata_schema_normalize(SCHEMA)
    sample = metadata(random.Random(1))
    user_agent_is_bot(BROWSERS[0])
    detector, n = CrawlerDetect(), 2000
    cached = timeit.timeit(lambda: user_agent_is_bot(BROWSERS[0]), number=n) / n * 1e6
    uncached = timeit.timeit(lambda: detector._check_crawler(BROWSERS[1]), number=200) / 200 * 1e6
    check = timeit.timeit(lambda: metadata_violations(schema, sample), number=n) / n * 1e6
    print(
        f"the checks alone: user agent verdict {cached:.2f} µs from the LRU ({uncached:.0f} µs for a user agent "
        f"never seen), 10-property schema check {check:.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds per side, alternating")
    parser.add_argument("--hits", type=int, default=1500, help="hits per round")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = database_create(DATABASE_URL, fresh=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")
    os.environ.setdefault("SECRET_KEY", "quality-bench-only")
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = os.environ["INGEST_QUEUE_URL"] = ""
    os.environ["RATE_LIMIT_COLLECT_PER_ADDRESS"] = os.environ["RATE_LIMIT_COLLECT_PER_SITE_KEY"] = "0"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections
    from django.test import Client

    from custom_events.services import custom_event_create
    from paminga.services import account_create, account_update

    try:
        call_command("migrate", verbosity=0, interactive=False)
        accounts = {}
        for side in ("off", "on"):
            account = account_create(name=side, slug=f"bench-{side}", domains=["www.example.com"])
            account_update(account=account, filter_bots=side == "on")
            for i in range(4):
                custom_event_create(
                    account=account,
                    name=f"Event {i}",
                    slug=f"event-{i}",
                    counts_as_conversion=i == 0,
                    metadata_schema=SCHEMA if side == "on" else [],
                    metadata_schema_mode="enforce" if side == "on" else "off",
                )
            accounts[side] = account
        client = Client()
        rng = random.Random(7)
        # Warm-up: caches, prepared plans, the first visitors of both sides.
        for side in ("off", "on"):
            run(client, accounts[side], hits(rng, 300, f"warm-{side}"))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        results = {"off": [], "on": []}
        for r in range(args.rounds):
            batch = hits(random.Random(r), args.hits, f"r{r}")
            for side in ("off", "on") if r % 2 == 0 else ("on", "off"):
                prefixed = [(ua, body.replace(b'"r%d-' % r, f'"{side}{r}-'.encode())) for ua, body in batch]
                results[side].append(run(client, accounts[side], prefixed))
        print(f"{args.rounds} rounds of {args.hits:,} hits per side, {connection.vendor}, inline (no queue):")
        rates = {}
        for side, label in (("off", "checks off"), ("on", "bot filter + 10-property schema")):
            walls = [args.hits / wall for wall, _ in results[side]]
            cpus = [cpu / args.hits * 1000 for _, cpu in results[side]]
            rates[side] = (statistics.median(walls), statistics.median(cpus))
            print(
                f"  {label:32} {rates[side][0]:7,.0f} hits/s (median; {min(walls):,.0f}-{max(walls):,.0f}), "
                f"{rates[side][1]:.3f} ms CPU per hit in this process"
            )
        ratio = rates["on"][0] / rates["off"][0]
        cpu_ratio = rates["off"][1] / rates["on"][1]
        verdict = "met" if ratio >= 0.95 else "NOT met"
        print(f"  ratio on/off: {ratio:.3f} by hits/s, {cpu_ratio:.3f} by CPU per hit (target 0.95: {verdict})")
        checks_alone()
    finally:
        connections.close_all()
        if not args.keep:
            database_drop(DATABASE_URL)


if __name__ == "__main__":
    main()
