"""Monthly partitions of the raw tables on PostgreSQL.

Visits, page views, event occurrences and event debugger entries are each a table PARTITION BY RANGE on their time,
one partition per calendar month (UTC), plus a default partition that takes a row whose month has none yet (a
backdated API event, the demo history), so that no write ever fails for want of a partition. The partition task
(`partitions_maintain`, daily from Celery beat, and `manage.py partitions`) creates the coming months ahead, and
moves any month that reached the default partition out into a partition of its own. Retention drops whole months
(`partition_months_drop`): instant, and the disk is returned at once, where deleting rows leaves dead space.

Plain SQL migrations rather than django-postgres-extra: its partitioned models need its own database backend and
model base class, and do not run on SQLite, where the same models must keep working as plain tables. Here the
models are unchanged: only the tables are built differently (migration tracking 0006), and on SQLite every function
of this module does nothing.
"""

import logging
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from .models import RecordedKey

logger = logging.getLogger(__name__)

# table -> its time column: the partition key.
PARTITIONED = {
    "tracking_session": "started_at",
    "tracking_impression": "occurred_at",
    "tracking_eventrecord": "occurred_at",
    "tracking_rejectedhit": "created_at",
}
MONTHS_AHEAD = 3


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def month_start(at: date | datetime) -> date:
    return date(at.year, at.month, 1)


def month_next(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _bound(month: date) -> str:
    return datetime(month.year, month.month, 1, tzinfo=UTC).isoformat()


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month:%Y_%m}"


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def partition_months(table: str) -> list[date]:
    """The months that have a partition of their own, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT child.relname FROM pg_inherits JOIN pg_class parent ON parent.oid = inhparent "
            "JOIN pg_class child ON child.oid = inhrelid WHERE parent.relname = %s",
            [table],
        )
        names = [row[0] for row in cursor.fetchall()]
    prefix = f"{table}_p"
    return sorted(
        date(int(name[len(prefix) :][:4]), int(name[-2:]), 1)
        for name in names
        if name.startswith(prefix) and len(name) == len(prefix) + 7
    )


def partition_create(table: str, month: date) -> bool:
    """The month's partition of the table, created unless it exists; rows of that month already in the default
    partition are moved into it, in the same transaction. Returns whether it was created."""
    if month in partition_months(table):
        return False
    column, name = PARTITIONED[table], partition_name(table, month)
    lower, upper = _bound(month), _bound(month_next(month))
    default = f"{table}_default"
    in_range = f"{_q(column)} >= %s AND {_q(column)} < %s"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {_q(default)} WHERE {in_range} LIMIT 1", [lower, upper])
        if cursor.fetchone() is None:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {_q(name)} PARTITION OF {_q(table)} FOR VALUES FROM (%s) TO (%s)",
                [lower, upper],
            )
        else:
            # ATTACH checks that the default partition holds no row of the month: move them first. The new table's
            # indexes and constraints come from the parent when it is attached.
            cursor.execute(f"CREATE TABLE {_q(name)} (LIKE {_q(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            cursor.execute(
                f"WITH moved AS (DELETE FROM {_q(default)} WHERE {in_range} RETURNING *) "
                f"INSERT INTO {_q(name)} SELECT * FROM moved",
                [lower, upper],
            )
            cursor.execute(
                f"ALTER TABLE {_q(table)} ATTACH PARTITION {_q(name)} FOR VALUES FROM (%s) TO (%s)", [lower, upper]
            )
    logger.info("Partition %s created", name)
    return True


def _default_months(table: str) -> list[date]:
    """The months of the rows in the table's default partition after its oldest month with a partition (it is
    small: only rows of months without a partition reach it). Older months are ones retention dropped, whose few
    kept rows wait there for their own deletion."""
    column = PARTITIONED[table]
    months = partition_months(table)
    if not months:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', {_q(column)} AT TIME ZONE 'UTC') FROM {_q(table + '_default')}"
        )
        return sorted(m for m in (month_start(row[0]) for row in cursor.fetchall()) if m > months[0])


def partitions_ensure(first: date, last: date) -> list[str]:
    """Every partitioned table has a partition for each month from `first`'s to `last`'s. Returns the names of
    the partitions created."""
    if not partitioned():
        return []
    created = []
    for table in PARTITIONED:
        month = month_start(first)
        while month <= month_start(last):
            if partition_create(table, month):
                created.append(partition_name(table, month))
            month = month_next(month)
    return created


def partitions_maintain(*, now: datetime, ahead: int = MONTHS_AHEAD) -> list[str]:
    """The partition task: this month and the next `ahead` months exist, and any month that reached a default
    partition has a partition of its own."""
    if not partitioned():
        return []
    last = month_start(now)
    for _ in range(ahead):
        last = month_next(last)
    created = partitions_ensure(month_start(now), last)
    for table in PARTITIONED:
        for month in _default_months(table):
            if partition_create(table, month):
                created.append(partition_name(table, month))
    return created


def partition_detach(table: str, month: date) -> str:
    """Detaches the month's partition from its table and returns its name: a table of its own from then on, for the
    caller to read and drop in the same transaction (retention). Rows of that month written after go to the
    default partition."""
    name = partition_name(table, month)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {_q(table)} DETACH PARTITION {_q(name)}")
    return name


def table_partition(schema_editor, model, months: list[date]) -> None:
    """Rebuilds a model's table (a migration) as a partitioned table with the same columns, indexes, foreign keys
    and rows: its primary key becomes (id, time), a partition is created for each of `months` and for each month
    the rows hold, and the default partition takes the rest."""
    table = model._meta.db_table
    column = PARTITIONED[table]
    old = f"{table}_unpartitioned"
    execute = schema_editor.execute
    q = schema_editor.quote_name
    execute(f"ALTER TABLE {q(table)} RENAME TO {q(old)}")
    # Their names go to the new table's.
    execute(f"ALTER INDEX {q(table + '_pkey')} RENAME TO {q(old + '_pkey')}")
    execute(f"ALTER SEQUENCE IF EXISTS {q(table + '_id_seq')} RENAME TO {q(old + '_id_seq')}")
    execute(
        f"CREATE TABLE {q(table)} (LIKE {q(old)} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS, "
        f"PRIMARY KEY (id, {q(column)})) PARTITION BY RANGE ({q(column)})"
    )
    execute(f"CREATE TABLE {q(table + '_default')} PARTITION OF {q(table)} DEFAULT")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT date_trunc('month', {q(column)} AT TIME ZONE 'UTC') FROM {q(old)}")
        months = sorted(set(months) | {month_start(row[0]) for row in cursor.fetchall()})
    for month in months:
        lower, upper = _bound(month), _bound(month_next(month))
        execute(
            f"CREATE TABLE {q(partition_name(table, month))} PARTITION OF {q(table)} "
            f"FOR VALUES FROM ('{lower}') TO ('{upper}')"
        )
    execute(f"INSERT INTO {q(table)} SELECT * FROM {q(old)}")
    next_id = f"COALESCE((SELECT max(id) FROM {q(old)}), 0) + 1"
    execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {next_id}, false)")
    execute(f"DROP TABLE {q(old)} CASCADE")
    for index in model._meta.indexes:
        schema_editor.add_index(model, index)
    for field in model._meta.local_fields:
        if field.remote_field and field.db_constraint:
            execute(schema_editor._create_fk_sql(model, field, "_fk_%(to_table)s_%(to_column)s"))
        if field.db_index and not field.unique and field.remote_field:
            execute(schema_editor._create_index_sql(model, fields=[field]))


def recorded_keys_prune(*, now: datetime) -> int:
    """Deletes the keys older than INGEST_KEY_DAYS (one statement: the table holds only those days' keys)."""

    cutoff = now - timedelta(days=settings.INGEST_KEY_DAYS)
    deleted, _ = RecordedKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def batches_by_time(queryset, size: int):
    """A partitioned model's rows of the queryset, `size` at a time in (time, id) order: yields (ids, rows), where
    `rows` is a queryset of the model naming those ids and the time range they fall in, so that a statement on it
    reads only that range's partitions (the ids alone carry no time: every month's primary key would be probed).
    Each batch starts after the last row of the previous one, through the index that leads to the time, so no
    statement walks again over what earlier batches deleted (their index entries stay until the next vacuum)."""
    model = queryset.model
    column = PARTITIONED[model._meta.db_table]
    last = None
    while True:
        page = queryset
        if last is not None:
            page = page.filter(Q(**{f"{column}__gt": last[0]}) | Q(**{column: last[0], "id__gt": last[1]}))
        found = list(page.order_by(column, "id").values_list(column, "id")[:size])
        if not found:
            return
        last = found[-1]
        ids = [pk for _at, pk in found]
        # The queryset's own conditions stay (its account, above all: the statement stays within one account's
        # rows, as it must when the tables are distributed by account).
        yield ids, queryset.filter(pk__in=ids, **{f"{column}__gte": found[0][0], f"{column}__lte": last[0]})
