"""The occurrences CSV export at scale: rows per second and the process's memory, against what PostgreSQL itself
takes to produce the same columns. On a PostgreSQL database of its own, created and dropped by the script
(loopback only):

    .venv/bin/python bench/export_bench.py                       # 1.5M occurrences of one event
    .venv/bin/python bench/export_bench.py --events 3800000      # a bigger export
    .venv/bin/python bench/export_bench.py --events 200000 --keep
    EXPORT_BENCH_SERVER=postgres://postgres@127.0.0.1:5432 ...   # the server (default: that one)

One account in America/New_York holds --events occurrences of one custom event over a year, with --contacts
contacts and as many visitors; a second account holds as many contacts, visitors and occurrences again, so the
tables are not the exported account's alone. The data is written by set-based SQL (minutes with the ORM, seconds
this way): a fifth of the contacts without an email, a quarter of the occurrences without a visitor (API calls),
a tenth without metadata (the rest drawn from 2,100 distinct objects, with quotes and commas), the page URLs drawn
from 20,000 (500 pages, each with 40 query strings), a few starting with "=".

Measured, in this order:

- the baseline: `COPY (SELECT the same columns ...) TO STDOUT (FORMAT csv)` read by psycopg in this process, the
  fastest the server can produce and send the rows, with no formatting in Python;
- the export through the real view (Django's test client: middleware, view, queries, formatting), the whole
  streamed response consumed and counted, twice; time to the first byte, rows/s, the ratio to the baseline, and
  the CPU time of this process per row (all its threads: the export reads the next page on a second thread), which
  other work on the machine skews less than the rows per second;
- the process's peak RSS (resource.getrusage) before and after the exports: with the rows read in bounded
  chunks it does not grow with the size of the export.
"""

import argparse
import os
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import database_create, database_drop  # noqa: E402
from bench.scale_bench import client_for  # noqa: E402

SERVER = os.environ.get("EXPORT_BENCH_SERVER", "postgres://postgres@127.0.0.1:5432").rstrip("/")
DATABASE_URL = f"{SERVER}/export_bench_{os.getpid()}"
TIME_ZONE = "America/New_York"
URLS = 20_000  # distinct page URLs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_500_000, help="Occurrences exported.")
    parser.add_argument("--contacts", type=int, default=300_000, help="Contacts (and visitors) of each account.")
    parser.add_argument("--rounds", type=int, default=2, help="Exports measured.")
    parser.add_argument("--keep", action="store_true", help="Keep the database (prints its name).")
    args = parser.parse_args()
    host = urlsplit(SERVER).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"Loopback only: {host} is not this machine.")
    database_create(DATABASE_URL)
    try:
        os.environ["DATABASE_URL"] = DATABASE_URL
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")
        os.environ.setdefault("STATIC_MANIFEST", "0")
        os.environ["CELERY_BROKER_URL"] = ""
        os.environ["REDIS_URL"] = ""
        os.environ.setdefault("SECRET_KEY", "export-bench")
        os.environ["LOG_LEVEL"] = "ERROR"
        import warnings

        import django

        warnings.filterwarnings("ignore", message="No directory at")  # no collectstatic: the export serves none
        django.setup()
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep:
            print(f"Kept database {DATABASE_URL.rsplit('/', 1)[1]}")
        else:
            database_drop(DATABASE_URL)


def occurrences_write(*, account, custom_event, events: int, contacts: int) -> None:
    """`contacts` contacts and as many visitors, and `events` occurrences spread over the last 364 days."""
    from django.db import connection

    from tracking.models import PageText
    from tracking.texts import text_digest

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tracking_contact (account_id, email, score, fields, created_at) "
            "SELECT %s, CASE WHEN n %% 5 = 0 THEN NULL ELSE 'person' || n || '@bench.example' END, 0, '{}', now() "
            "FROM generate_series(1, %s) n",
            [account.pk, contacts],
        )
        cursor.execute("SELECT min(id) FROM tracking_contact WHERE account_id = %s", [account.pk])
        first_contact = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO tracking_visitor (account_id, uid, contact_id, created_at, last_seen_at) "
            "SELECT %s, md5(%s || '-' || n), %s + n - 1, now(), now() FROM generate_series(1, %s) n",
            [account.pk, account.slug, first_contact, contacts],
        )
        cursor.execute("SELECT min(id) FROM tracking_visitor WHERE account_id = %s", [account.pk])
        first_visitor = cursor.fetchone()[0]
    urls = ['=HYPERLINK("https://evil.example","x")'] + [
        f"https://bench.example/pages/{n % 500}?utm_source=news&id={n}" for n in range(URLS)
    ]
    PageText.objects.bulk_create(
        [PageText(account=account, digest=text_digest(url), value=url) for url in urls], batch_size=5000
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO tracking_eventrecord (
                account_id, custom_event_id, contact_id, visitor_id, source, occurred_at, page_url_text_id,
                marketing_channel, marketing_source_name, utm_source, utm_medium, utm_campaign, utm_term, utm_content,
                metadata, metadata_dropped, metadata_bytes, is_conversion, created_at)
            SELECT %(account)s, %(event)s, %(contact)s + (n * 7919) %% %(contacts)s,
                CASE WHEN n %% 4 = 0 THEN NULL ELSE %(visitor)s + (n * 7919) %% %(contacts)s END,
                CASE WHEN n %% 4 = 0 THEN 'api' ELSE 'beacon' END,
                now() - make_interval(secs => n * (364 * 86400.0 / %(events)s)),
                u.id,
                (ARRAY['DIRECT_TRAFFIC', 'ORGANIC_SEARCH', 'PAID_SEARCH', 'EMAIL', ''])[1 + n %% 5], '',
                (ARRAY['newsletter', 'google', '', 'partner'])[1 + n %% 4], (ARRAY['email', 'cpc', ''])[1 + n %% 3],
                (ARRAY['spring-sale', 'brand', '', 'café crème, "best"'])[1 + n %% 4], '', '',
                CASE WHEN n %% 10 = 0 THEN NULL
                     ELSE jsonb_build_object('planTier', (ARRAY['free', 'pro', 'enterprise'])[1 + n %% 3],
                                             'seats', n %% 50, 'trial', n %% 2 = 0,
                                             'note', 'order, "' || n %% 7 || '"') END,
                false, 0, n %% 10 = 0, now()
            FROM generate_series(1::bigint, %(events)s) n
            LEFT JOIN tracking_pagetext u ON u.account_id = %(account)s AND n %% 4 <> 0 AND u.value =
                CASE WHEN n %% 1000 = 1 THEN '=HYPERLINK("https://evil.example","x")'
                     ELSE 'https://bench.example/pages/' || n %% %(urls)s %% 500 || '?utm_source=news&id='
                          || n %% %(urls)s END
            ORDER BY n  -- rows in the order of their time, as recorded: the join would scatter them over the heap
            """,
            {
                "account": account.pk,
                "event": custom_event.pk,
                "contact": first_contact,
                "visitor": first_visitor,
                "contacts": contacts,
                "events": events,
                "urls": URLS,
            },
        )
        cursor.execute("ANALYZE")


def copy_baseline(*, account, custom_event, start_at, end_at) -> tuple[int, float]:
    """Rows and seconds of the same columns, in the same order, written as CSV by PostgreSQL's COPY and read here."""
    from django.db import connection

    statement = f"""
        COPY (
            SELECT e.occurred_at, c.email, e.contact_id, v.uid, e.source, coalesce(p.value, ''), e.marketing_channel,
                e.utm_source, e.utm_medium, e.utm_campaign, e.utm_term, e.utm_content, e.is_conversion,
                e.attributed_impression_id, e.metadata, e.metadata_dropped
            FROM tracking_eventrecord e
            JOIN tracking_contact c ON c.id = e.contact_id
            LEFT JOIN tracking_visitor v ON v.id = e.visitor_id
            LEFT JOIN tracking_pagetext p ON p.id = e.page_url_text_id
            WHERE e.account_id = {account.pk} AND e.custom_event_id = {custom_event.pk}
                AND e.occurred_at >= '{start_at.isoformat()}' AND e.occurred_at < '{end_at.isoformat()}'
            ORDER BY e.occurred_at DESC, e.id DESC
        ) TO STDOUT (FORMAT csv)
    """
    connection.ensure_connection()
    started = time.perf_counter()
    lines = 0
    with connection.connection.cursor() as cursor, cursor.copy(statement) as copy:
        for block in copy:
            lines += bytes(block).count(b"\n")
    return lines, time.perf_counter() - started


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args) -> None:
    from django.conf import settings
    from django.core.management import call_command
    from django.urls import reverse

    from automations.reports.selectors import report_default_range
    from automations.reports.services import day_bounds
    from custom_events.services import custom_event_create
    from paminga.services import account_create

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    print(f"Database {DATABASE_URL.rsplit('/', 1)[1]}: writing {args.events:,} occurrences (twice)", flush=True)
    started = time.monotonic()
    accounts = []
    for slug in ("bench-export", "bench-other"):
        account = account_create(name=slug, slug=slug, time_zone=TIME_ZONE, domains=["bench.example"])
        event = custom_event_create(account=account, name="Requested demo", slug="requested-demo")
        occurrences_write(account=account, custom_event=event, events=args.events, contacts=args.contacts)
        accounts.append((account, event))
    print(f"  written in {time.monotonic() - started:.0f} s")
    account, event = accounts[0]

    client = client_for(account)
    start, end = report_default_range(account=account)
    start = end - timedelta(days=365)
    url = f"{reverse('reports:event_csv', args=[event.pk, 'occurrences'])}?start={start}&end={end}"

    rows, seconds = copy_baseline(
        account=account,
        custom_event=event,
        start_at=day_bounds(start, end, account.tzinfo)[0],
        end_at=day_bounds(start, end, account.tzinfo)[1],
    )
    baseline = rows / seconds
    print(f"\nBaseline, COPY (SELECT ...) TO STDOUT: {rows:,} rows in {seconds:.2f} s, {baseline:,.0f} rows/s")
    assert rows == args.events, rows

    rss_before = peak_rss_mb()
    print(f"Peak RSS before the exports: {rss_before:.0f} MB")
    for round_ in range(1, args.rounds + 1):
        started = time.perf_counter()
        cpu_started = time.process_time()
        response = client.get(url)
        assert response.status_code == 200, response.status_code
        first_row = None
        lines = size = 0
        for chunk in response.streaming_content:
            lines += chunk.count(b"\n")
            size += len(chunk)
            if first_row is None and lines > 1:
                first_row = time.perf_counter() - started
        response.close()
        seconds = time.perf_counter() - started
        cpu = (time.process_time() - cpu_started) / args.events * 1e6
        assert lines == args.events + 1, lines  # the header, then one line per occurrence (no newline in the data)
        rate = args.events / seconds
        print(
            f"Export {round_} through the view: {args.events:,} rows, {size / 1e6:,.0f} MB in {seconds:.2f} s "
            f"(first row after {first_row * 1000:.0f} ms): {rate:,.0f} rows/s, {rate / baseline:.2f}× the baseline, "
            f"{cpu:.1f} µs of CPU per row; peak RSS {peak_rss_mb():.0f} MB"
        )
    print(f"Peak RSS after the exports: {peak_rss_mb():.0f} MB (+{peak_rss_mb() - rss_before:.0f} MB)")
    print(f"Load average at the end: {os.getloadavg()[0]:.1f} (other processes on the machine skew every figure)")


if __name__ == "__main__":
    main()
