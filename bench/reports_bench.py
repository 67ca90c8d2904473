"""Report page render times at 100k, 1M and 5M recorded events, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/paminga_bench .venv/bin/python bench/reports_bench.py
    ... bench/reports_bench.py --sizes 100k,1m      # the smaller steps only
    ... bench/reports_bench.py --sizes 5m           # the 5M step alone

Each size is one account (bench-100k, bench-1m, bench-5m, in America/New_York) holding that many events over a
year, written once by the seed_demo_data generator and reused by later runs (an account with a different number
of events is refused). The same run measures two baselines: the health check (the middleware stack and nothing
else) and the same report pages on an empty account (bench-empty). Each page is requested through Django's test
client (the whole request: middleware, view, queries, template) a few times after two warm-up requests; the
median and the slowest are printed, with ratios to the empty account and to the 100k step.

It also times the periodic rollup task: a run with nothing new, and per size a run that rebuilds two days (today
and yesterday, what a run every few minutes rebuilds).
"""

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")
os.environ.setdefault("STATIC_MANIFEST", "0")  # no collectstatic needed

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from automations.reports.seed import demo_definitions_ensure, demo_history_create  # noqa: E402
from automations.reports.selectors import report_default_range  # noqa: E402
from automations.reports.services import report_days_invalidate, report_rollups_update  # noqa: E402
from bench.scale_bench import client_for  # noqa: E402
from paminga.models import Account  # noqa: E402
from paminga.services import account_create  # noqa: E402
from tracking.models import EventRecord  # noqa: E402

SIZES = {"100k": 100_000, "1m": 1_000_000, "5m": 5_000_000}
TIME_ZONE = "America/New_York"
REQUESTS = 9


def account_for(slug: str, name: str) -> Account:
    account = Account.objects.filter(slug=slug).first()
    if account is None:
        account = account_create(name=name, slug=slug, time_zone=TIME_ZONE)
    demo_definitions_ensure(account=account)
    return account


def ensure_events(account: Account, events: int) -> None:
    have = EventRecord.objects.filter(account=account).count()
    if have == events:
        print(f"  {account.slug}: reusing {have:,} events")
        return
    if have:
        sys.exit(f"{account.slug} holds {have:,} events, not {events:,}: use a fresh database or another one.")
    print(f"  {account.slug}: writing {events:,} events…", flush=True)
    result = demo_history_create(account=account, events=events, days=365)
    print(f"  {account.slug}: wrote {result.events:,} events in {result.seconds:.0f} s; rolling up…", flush=True)
    started = time.monotonic()
    report_rollups_update()
    print(f"  {account.slug}: rolled up in {time.monotonic() - started:.0f} s", flush=True)


def pages(account: Account) -> dict[str, str]:
    video = account.custom_events.get(slug="watched-product-video")
    pricing = account.custom_events.get(slug="visited-pricing-page")
    return {
        "overview": "/automations/custom-events/",
        "event report": f"/automations/custom-events/{video.pk}/report/",
        "event report, metadata filter": (
            f"/automations/custom-events/{pricing.pk}/report/?key=planTier&meta_key=planTier&meta_value=enterprise"
        ),
        "conversions": "/automations/conversions/",
    }


def measure(client: Client, url: str) -> dict:
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return {"median_ms": statistics.median(times), "max_ms": max(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100k,1m,5m", help="Comma-separated steps among 100k, 1m, 5m.")
    args = parser.parse_args()
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        sys.exit(f"Unknown size {unknown[0]!r}: choose among {', '.join(SIZES)}.")
    if connection.vendor != "postgresql":
        sys.exit("Run this on PostgreSQL: DATABASE_URL=postgres://… (the 300 ms target is for PostgreSQL).")
    settings.ALLOWED_HOSTS = ["*"]

    print("Preparing accounts")
    empty = account_for("bench-empty", "Bench (empty)")
    accounts = {size: account_for(f"bench-{size}", f"Bench {size}") for size in sizes}
    for size, account in accounts.items():
        ensure_events(account, SIZES[size])
    started = time.monotonic()
    report_rollups_update()
    steady_rollup_ms = (time.monotonic() - started) * 1000

    two_days_ms = {}
    for size, account in accounts.items():
        today = report_default_range(account=account)[1]
        report_days_invalidate(account=account, days=[today, today - timedelta(days=1)])
        started = time.monotonic()
        report_rollups_update()
        two_days_ms[size] = (time.monotonic() - started) * 1000

    results = {
        "steady_state_rollup_ms": steady_rollup_ms,
        "two_day_rollup_ms": two_days_ms,
        "baseline": {},
        "sizes": {},
    }
    empty_client = client_for(empty)
    results["baseline"]["health check"] = measure(empty_client, "/healthz")
    for page, url in pages(empty).items():
        results["baseline"][page] = measure(empty_client, url)
    for size, account in accounts.items():
        client = client_for(account)
        results["sizes"][size] = {page: measure(client, url) for page, url in pages(account).items()}

    health = results["baseline"]["health check"]["median_ms"]
    print(f"\nBaseline, same run: health check {health:.1f} ms (median of {REQUESTS})")
    print(f"Rollup run with nothing new: {steady_rollup_ms:.0f} ms")
    for size, ms in two_days_ms.items():
        print(f"Rollup run rebuilding today and yesterday, {size}: {ms:.0f} ms")
    print()
    header = f"{'events':>8}  {'page':<31} {'median':>9} {'slowest':>9} {'x empty':>8} {'x first':>7}"
    print(header)
    print("-" * len(header))
    for page in pages(empty):
        base = results["baseline"][page]["median_ms"]
        print(f"{'0':>8}  {page:<31} {base:>7.1f}ms {results['baseline'][page]['max_ms']:>7.1f}ms {1:>8.2f} {'':>7}")
        first = None
        for size in sizes:
            r = results["sizes"][size][page]
            first = first or r["median_ms"]
            print(
                f"{size:>8}  {page:<31} {r['median_ms']:>7.1f}ms {r['max_ms']:>7.1f}ms "
                f"{r['median_ms'] / base:>8.2f} {r['median_ms'] / first:>7.2f}"
            )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"reports-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nSaved {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
