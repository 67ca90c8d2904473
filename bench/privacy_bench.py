"""Erasing a contact and running retention, on PostgreSQL.

    .venv/bin/python bench/privacy_bench.py                      # 1,000,000 events of history; a few minutes
    .venv/bin/python bench/privacy_bench.py --events 200000      # smaller

It creates its own database (`paminga_privacy_bench` on BENCH_POSTGRES_URL, default
postgres://postgres@127.0.0.1:5432/postgres, loopback), migrates it, and drops it at the end (--keep keeps it).

1. Erasure: an account with a background history (a tenth of --events), and a contact with 10,000 custom events
   (each with an action run), 2,000 page views, 200 visits and 5 browsers. `contact_erase` is timed three times
   (the contact rebuilt each time); the median and the slowest are printed. Target: under 2 s.
2. Retention: an account with --events events over 13 months (seed_demo_data's generator: visits, page views,
   debugger entries, runs), rolled up, then a retention of 12 months: `retention_run` deletes the oldest month of
   raw rows in batches. Its time, the rows deleted and the rate are printed, and the report totals of the deleted
   days are compared before and after (they must not change).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_NAME = "paminga_privacy_bench"
SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def database_create() -> str:
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DB_NAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    return SERVER.rsplit("/", 1)[0] + "/" + DB_NAME


def database_drop() -> None:
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))


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


def bench_retention(*, events: int) -> None:
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
    started = time.monotonic()
    run = retention_run(now=now, accounts=[account])
    seconds = time.monotonic() - started
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the retention history")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = database_create()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = ""  # tasks in-process: nothing leaves the machine
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    try:
        call_command("migrate", verbosity=0, interactive=False)
        bench_erasure(background=max(args.events // 10, 1000))
        bench_retention(events=args.events)
    finally:
        connections.close_all()
        if not args.keep:
            database_drop()


if __name__ == "__main__":
    main()
