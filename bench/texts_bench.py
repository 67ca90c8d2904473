#!/usr/bin/env python
"""Bytes per recorded event with page texts stored once (tracking.texts), against the same rows holding their texts
inline. On a PostgreSQL database of its own, created and dropped by the script (loopback only):

    .venv/bin/python bench/texts_bench.py                      # 1M events of the demo mix, about two minutes
    .venv/bin/python bench/texts_bench.py --events 3000000
    TEXTS_BENCH_SERVER=postgres://postgres@127.0.0.1:5432 ...  # the server (default: that one)

One account gets --events occurrences over a year from the product's demo generator (the demo mix: 1.33 page views
and 0.6 visits per event), then VACUUM ANALYZE. Printed:

- each table's bytes per event (heap with TOAST, then indexes), every partition counted under its table;
- the baseline, from the same rows: what the tables would hold with each text inline instead of a reference. Each
  reference's text is measured where it is stored (`pg_column_size` of the text's value, what the same value takes in
  a text column), an empty one counted as the 1 byte an empty string takes, and the 8-byte references and the
  texts' own table taken off. Row alignment is not modelled, so the baseline is an estimate within a few bytes;
- the ratio of the two, and the texts' table: rows, bytes.
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import database_create, database_drop  # noqa: E402

SERVER = os.environ.get("TEXTS_BENCH_SERVER", "postgres://postgres@127.0.0.1:5432").rstrip("/")
DATABASE_URL = f"{SERVER}/texts_bench_{os.getpid()}"
REFERENCE_BYTES = 8


def measure(events: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    from automations.reports.seed import demo_history_create
    from bench.scale_bench import TABLE_BYTES_SQL
    from paminga.services import account_create
    from tracking.models import EventRecord, Impression, PageText, Session

    call_command("migrate", verbosity=0)
    account = account_create(name="Bench", slug="bench", time_zone="America/New_York", domains=["bench.example"])
    started = time.perf_counter()
    result = demo_history_create(account=account, events=events, log=None)
    print(
        f"Demo history: {result.events:,} events, {result.impressions:,} page views, {result.sessions:,} visits "
        f"in {time.perf_counter() - started:.0f} s"
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute(TABLE_BYTES_SQL)
        tables = {name: (heap, indexes, rows) for name, heap, indexes, rows in cursor.fetchall()}

        inline = references = 0
        for model in (Session, Impression, EventRecord):
            table = model._meta.db_table
            for name, reference in model.TEXTS.items():
                column = model._meta.get_field(reference).column
                cursor.execute(
                    f"SELECT coalesce(sum(pg_column_size(p.value)), 0), count(p.id), count(*) "
                    f"FROM {table} t LEFT JOIN {PageText._meta.db_table} p ON p.id = t.{column}"
                )
                stored, referred, rows = cursor.fetchone()
                inline += stored + (rows - referred)
                references += REFERENCE_BYTES * referred
                print(f"  {table}.{name}: {stored / max(rows, 1):5.1f} B inline per row, {referred:,} of {rows:,} set")

    event_tables = [m._meta.db_table for m in (EventRecord, Impression, Session, PageText)]
    print(f"\n{'table':<28} {'heap B/event':>13} {'index B/event':>14} {'rows':>12}")
    total = 0
    for name in event_tables:
        heap, indexes, rows = tables.get(name, (0, 0, 0))
        total += heap + indexes
        print(f"{name:<28} {heap / events:>13.0f} {indexes / events:>14.0f} {rows:>12,}")
    everything = sum(heap + indexes for heap, indexes, _rows in tables.values())
    texts = sum(tables.get(PageText._meta.db_table, (0, 0, 0))[:2])
    baseline = everything - texts - references + inline
    print(
        f"\nAll tables and indexes: {everything / events:,.0f} B/event with texts stored once; "
        f"{baseline / events:,.0f} B/event with them inline (estimated from the same rows): "
        f"{everything / baseline:.2f}×, {(baseline - everything) / events:,.0f} B/event saved"
    )
    print(f"The texts' table: {tables.get(PageText._meta.db_table, (0, 0, 0))[2]:,} texts, {texts / 1024:,.0f} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="Recorded events of the demo mix.")
    args = parser.parse_args()
    host = urlsplit(SERVER).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"Loopback only: {host} is not this machine.")
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)
    database_create(DATABASE_URL)
    try:
        os.environ["DATABASE_URL"] = DATABASE_URL
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")
        os.environ.setdefault("SECRET_KEY", "texts-bench")
        os.environ.setdefault("STATIC_MANIFEST", "0")
        os.environ["LOG_LEVEL"] = "ERROR"
        import django

        django.setup()
        measure(args.events)
    finally:
        from django.db import connections

        connections.close_all()
        database_drop(DATABASE_URL)


if __name__ == "__main__":
    main()
