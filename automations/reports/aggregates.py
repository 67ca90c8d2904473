"""Aggregations over raw rows, shared by the rollup builder (which stores them per day) and the report selectors
(which add the raw rows not rolled up yet). Using the same functions for both is what keeps the two halves of
every figure consistent: a page, a metadata value or a day is computed by one expression in one place.
"""

import json
import sys
from array import array
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from zoneinfo import ZoneInfo

import datasketches
from django.core.exceptions import EmptyResultSet
from django.db import connection, connections
from django.db.models import CharField, Count, F, Func, Q, QuerySet
from django.db.models.functions import TruncDate

from tracking.models import EventRecord
from tracking.texts import text_value

VALUE_MAX_LENGTH = 500
METADATA_KEY_MAX_LENGTH = 100
# A metadata value holding an id (an order number, a user id) would give one rollup row per occurrence: per
# event, day and key, the most frequent values are kept and the rest are summed into OTHER.
METADATA_VALUES_PER_KEY = 100
METADATA_KEYS_PER_EVENT = 50
# A sentinel no real value is likely to be (PostgreSQL text cannot hold a NUL character).
OTHER = "\u241fother"


class PageOf(Func):
    """The page of a URL: the URL without its query string and fragment, so that a landing page reached through
    different UTM links is one page."""

    output_field = CharField()
    arity = 1

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"split_part(split_part({sql}, '#', 1), '?', 1)", params

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        inner = f"SUBSTR({sql}, 1, INSTR({sql} || '#', '#') - 1)"
        return f"SUBSTR({inner}, 1, INSTR({inner} || '?', '?') - 1)", [*params] * 4


def _sqlite_json_path(key: str) -> str:
    return "$." + json.dumps(key)


class MetadataText(Func):
    """A top-level metadata value as text, the same text the rollups store: strings unquoted, numbers and
    booleans as JSON writes them, null as "null"; NULL when the key is absent."""

    output_field = CharField()

    def __init__(self, key: str, **extra):
        self.key = key
        super().__init__(F("metadata"), **extra)

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"CASE WHEN ({sql} -> %s) IS NULL THEN NULL ELSE COALESCE(({sql} -> %s) #>> '{{}}', 'null') END",
            [*params, self.key, *params, self.key],
        )

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        path = _sqlite_json_path(self.key)
        return (
            f"CASE json_type({sql}, %s) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null' "
            f"ELSE CAST(json_extract({sql}, %s) AS TEXT) END",
            [*params, path, *params, path],
        )


# The dimensions of EventDailyBreakdown (except metadata) and the expression each groups by.
DIMENSION_EXPRESSIONS = {
    "source": F("source"),
    "channel": F("marketing_channel"),
    "utm_source": F("utm_source"),
    "utm_medium": F("utm_medium"),
    "utm_campaign": F("utm_campaign"),
    "page": PageOf(text_value("page_url_text")),
    "attributed_page": PageOf(text_value("attributed_impression__url_text")),
    "attributed_channel": F("attributed_impression__channel"),
}
ATTRIBUTED_DIMENSIONS = ("attributed_page", "attributed_channel")
ATTRIBUTED = Q(is_conversion=True, attributed_impression__isnull=False)


def local_day(field: str, tz: ZoneInfo) -> TruncDate:
    return TruncDate(field, tzinfo=tz)


def _clip(value) -> str:
    return (value or "")[:VALUE_MAX_LENGTH]


def events_totals(qs: QuerySet[EventRecord], *, tz: ZoneInfo, by_day: bool = True) -> dict:
    """{(custom_event_id, day or None): [fires, conversions, attributed]}."""
    keys = ["custom_event_id"] + (["day"] if by_day else [])
    if by_day:
        qs = qs.annotate(day=local_day("occurred_at", tz))
    rows = qs.values(*keys).annotate(
        n=Count("id"),
        c=Count("id", filter=Q(is_conversion=True)),
        a=Count("id", filter=Q(is_conversion=True, attributed_impression_id__isnull=False)),
    )
    return {(r["custom_event_id"], r.get("day")): [r["n"], r["c"], r["a"]] for r in rows.order_by()}


def events_by_dimension(
    qs: QuerySet[EventRecord], *, tz: ZoneInfo, dimension: str, by_day: bool = True, by_event: bool = True
) -> dict:
    """{(custom_event_id or None, day or None, value): [fires, conversions]} for one dimension."""
    if dimension in ATTRIBUTED_DIMENSIONS:
        qs = qs.filter(ATTRIBUTED)
    qs = qs.annotate(value=DIMENSION_EXPRESSIONS[dimension])
    keys = (["custom_event_id"] if by_event else []) + (["day"] if by_day else []) + ["value"]
    if by_day:
        qs = qs.annotate(day=local_day("occurred_at", tz))
    rows = qs.values(*keys).annotate(n=Count("id"), c=Count("id", filter=Q(is_conversion=True)))
    result = defaultdict(lambda: [0, 0])
    for r in rows.order_by():
        counts = result[(r.get("custom_event_id"), r.get("day"), _clip(r["value"]))]
        counts[0] += r["n"]
        counts[1] += r["c"]
    return dict(result)


def events_by_dimensions(qs: QuerySet[EventRecord], *, tz: ZoneInfo) -> dict[str, dict]:
    """events_by_dimension for every dimension, per event and day, in two queries instead of eight: one grouped by
    all the plain dimensions together, one by both attributed ones (then summed per dimension here)."""
    result: dict[str, dict] = {d: defaultdict(lambda: [0, 0]) for d in DIMENSION_EXPRESSIONS}
    plain = [d for d in DIMENSION_EXPRESSIONS if d not in ATTRIBUTED_DIMENSIONS]
    for group, base in ((plain, qs), (list(ATTRIBUTED_DIMENSIONS), qs.filter(ATTRIBUTED))):
        names = {f"d_{d}": DIMENSION_EXPRESSIONS[d] for d in group}
        rows = (
            base.annotate(day=local_day("occurred_at", tz), **names)
            .values("custom_event_id", "day", *names)
            .annotate(n=Count("id"), c=Count("id", filter=Q(is_conversion=True)))
            .order_by()
        )
        for r in rows:
            for d in group:
                counts = result[d][(r["custom_event_id"], r["day"], _clip(r[f"d_{d}"]))]
                counts[0] += r["n"]
                counts[1] += r["c"]
    return {d: dict(v) for d, v in result.items()}


def events_metadata(qs: QuerySet[EventRecord], *, tz: ZoneInfo, by_day: bool = True, cap: bool = False) -> dict:
    """{(custom_event_id, day or None, key, value): [fires, conversions]} over every top-level metadata key.

    With `cap`, keeps per event and day the METADATA_KEYS_PER_EVENT most used keys and per key the
    METADATA_VALUES_PER_KEY most frequent values, the rest of a key's values summed into OTHER.
    """
    inner = qs.annotate(day=local_day("occurred_at", tz)) if by_day else qs
    inner = inner.values("custom_event_id", *(["day"] if by_day else []), "is_conversion", "metadata").order_by()
    sql, params = inner.query.sql_with_params()
    day = "s.day" if by_day else "NULL"
    if connection.vendor == "postgresql":
        query = (
            f"SELECT s.custom_event_id, {day}, kv.key, COALESCE(kv.value #>> '{{}}', 'null'), COUNT(*), "
            f"COUNT(*) FILTER (WHERE s.is_conversion) "
            f"FROM ({sql}) s CROSS JOIN LATERAL jsonb_each(s.metadata) kv "
            f"WHERE jsonb_typeof(s.metadata) = 'object' GROUP BY 1, 2, 3, 4"
        )
    else:
        query = (
            f"SELECT s.custom_event_id, {day}, kv.key, CASE kv.type WHEN 'true' THEN 'true' WHEN 'false' "
            f"THEN 'false' WHEN 'null' THEN 'null' ELSE CAST(kv.value AS TEXT) END, COUNT(*), "
            f"SUM(CASE WHEN s.is_conversion THEN 1 ELSE 0 END) "
            f"FROM ({sql}) s, json_each(s.metadata) kv "
            f"WHERE json_type(s.metadata) = 'object' GROUP BY 1, 2, 3, 4"
        )
    result = defaultdict(lambda: [0, 0])
    # qs.db: the database the report reads (the replica inside a report, paminga/replica.py).
    with connections[qs.db].cursor() as cursor:
        cursor.execute(query, params)
        for event_id, day_value, key, value, fires, conversions in cursor.fetchall():
            if len(key) > METADATA_KEY_MAX_LENGTH:
                continue
            if by_day and isinstance(day_value, str):  # SQLite returns dates as text from raw SQL
                day_value = date.fromisoformat(day_value)
            counts = result[(event_id, day_value, key, _clip(value))]
            counts[0] += fires
            counts[1] += conversions or 0
    return _metadata_cap(result) if cap else dict(result)


def _metadata_cap(result: dict) -> dict:
    by_key = defaultdict(list)
    for (event_id, day, key, value), counts in result.items():
        by_key[(event_id, day, key)].append((value, counts))
    keys_per_event = defaultdict(list)
    for (event_id, day, key), values in by_key.items():
        keys_per_event[(event_id, day)].append((sum(c[0] for _v, c in values), key))
    capped = {}
    for (event_id, day), keys in keys_per_event.items():
        for _total, key in sorted(keys, reverse=True)[:METADATA_KEYS_PER_EVENT]:
            values = sorted(by_key[(event_id, day, key)], key=lambda vc: (-vc[1][0], vc[0]))
            for value, counts in values[:METADATA_VALUES_PER_KEY]:
                capped[(event_id, day, key, value)] = counts
            rest = values[METADATA_VALUES_PER_KEY:]
            if rest:
                capped[(event_id, day, key, OTHER)] = [sum(c[0] for _v, c in rest), sum(c[1] for _v, c in rest)]
    return capped


def events_people(qs: QuerySet[EventRecord], *, tz: ZoneInfo, by_day: bool = True) -> dict:
    """{(custom_event_id, day or None): (set of contact ids, set of visitor ids)}."""
    keys = ["custom_event_id"] + (["day"] if by_day else [])
    if by_day:
        qs = qs.annotate(day=local_day("occurred_at", tz))
    if connection.vendor == "postgresql":
        # One row per event and day with both distinct sets, built by the database: far fewer rows to send.
        from django.contrib.postgres.aggregates import ArrayAgg

        rows = qs.values(*keys).annotate(
            contacts=ArrayAgg("contact_id", distinct=True),
            visitors=ArrayAgg("visitor_id", distinct=True, filter=Q(visitor_id__isnull=False)),
        )
        return {
            (r["custom_event_id"], r.get("day")): (set(r["contacts"] or ()), set(r["visitors"] or ()))
            for r in rows.order_by()
        }
    result = defaultdict(lambda: (set(), set()))
    for row in qs.values_list(*keys, "contact_id").distinct().order_by():
        result[(row[0], row[1] if by_day else None)][0].add(row[-1])
    for row in qs.filter(visitor_id__isnull=False).values_list(*keys, "visitor_id").distinct().order_by():
        result[(row[0], row[1] if by_day else None)][1].add(row[-1])
    return dict(result)


def page_views(qs, *, tz: ZoneInfo, by_day: bool = True) -> dict:
    """{(day or None, page): page views} from an Impression queryset."""
    keys = (["day"] if by_day else []) + ["value"]
    qs = qs.annotate(value=PageOf(text_value("url_text")))
    if by_day:
        qs = qs.annotate(day=local_day("occurred_at", tz))
    result = defaultdict(int)
    for r in qs.values(*keys).annotate(n=Count("id")).order_by():
        result[(r.get("day"), _clip(r["value"]))] += r["n"]
    return dict(result)


def visits(qs, *, tz: ZoneInfo, by_day: bool = True) -> dict:
    """{(day or None, channel): visits} from a Session queryset (a visit counts on the day it started)."""
    keys = (["day"] if by_day else []) + ["channel"]
    if by_day:
        qs = qs.annotate(day=local_day("started_at", tz))
    return {(r.get("day"), r["channel"]): r["n"] for r in qs.values(*keys).annotate(n=Count("id")).order_by()}


# --- Unique contacts and visitors: HyperLogLog sketches, stored per event and day -------------------------------
#
# Exact sets of ids made a year's overview cost the sum of the year's daily uniques (millions of ids at 30 M events:
# about 4 s). A HyperLogLog sketch of a day is at most about 2 KB whatever the day holds, and the sketches of any
# range merge (union) into one estimate, so every range costs the same ≤ 366 small rows.
#
# Apache DataSketches: a maintained C++ core whose serialized form is portable (little-endian, versioned), so a
# sketch made on SQLite or PostgreSQL, by any process, merges with any other; and it hashes integers the same way
# everywhere (MurmurHash3 of the 64-bit value), so ids added from raw rows and ids in stored sketches match.
#
# lg_k = 12 (4,096 buckets): a merged estimate's relative standard error is 1.6% (±3.2% at 95%, ±4.7% at 99.7%,
# DataSketches' a-priori bounds); below a few hundred distinct ids a sketch keeps the hashes themselves and is
# exact in practice. 14 would quarter the error at four times the bytes read per range; 12 keeps a year of one
# event under 1.6 MB (HLL_4: half a byte per bucket).
HLL_LG_K = 12
HLL_TYPE = datasketches.tgt_hll_type.HLL_4


def sketch_pack(ids: Iterable[int], *, into=None) -> bytes:
    """The serialized sketch of these ids, merged into the serialized sketch `into` when given (incremental
    rollups: a day's new rows are added to its stored sketch, never rebuilt from all its rows)."""
    if into:
        union = datasketches.hll_union(HLL_LG_K)
        union.update(datasketches.hll_sketch.deserialize(bytes(into)))
        sketch = datasketches.hll_sketch(HLL_LG_K, HLL_TYPE)
        for value in ids:
            sketch.update(int(value))
        union.update(sketch)
        return union.get_result(HLL_TYPE).serialize_compact()
    sketch = datasketches.hll_sketch(HLL_LG_K, HLL_TYPE)
    for value in ids:
        sketch.update(int(value))
    return sketch.serialize_compact()


class DistinctCounter:
    """An estimate of the distinct ids among stored sketches and collections of raw ids (≤ 366 merges a range)."""

    def __init__(self):
        self.union = datasketches.hll_union(HLL_LG_K)
        self.raw: datasketches.hll_sketch | None = None
        self.empty = True

    def add_sketch(self, blob) -> None:
        if blob:
            self.union.update(datasketches.hll_sketch.deserialize(bytes(blob)))
            self.empty = False

    def add_ids(self, ids: Iterable[int]) -> None:
        if self.raw is None:
            self.raw = datasketches.hll_sketch(HLL_LG_K, HLL_TYPE)
        for value in ids:
            self.raw.update(int(value))
            self.empty = False

    def merge(self, other: "DistinctCounter") -> None:
        self.union.update(other.union.get_result())
        if other.raw is not None:
            self.union.update(other.raw)
        self.empty = self.empty and other.empty

    def estimate(self) -> int:
        if self.empty:
            return 0
        result = datasketches.hll_union(HLL_LG_K)
        result.update(self.union.get_result())
        if self.raw is not None:
            result.update(self.raw)
        return round(result.get_estimate())


def rows_binary(qs: QuerySet) -> list[tuple]:
    """The rows of a values_list() queryset. On PostgreSQL they are fetched in the binary format: a dense sketch
    is about 2 KB, which the text format sends as hex (twice the bytes, decoded in Python), and a year of an
    account's sketches is megabytes (measured: 15 ms instead of 35 ms for 4.3 MB)."""
    database = connections[qs.db]
    if database.vendor != "postgresql":
        return list(qs)
    import psycopg  # PostgreSQL's driver: present whenever the backend is

    try:
        sql, params = qs.query.sql_with_params()
    except EmptyResultSet:  # .none(), or an empty __in: nothing to ask
        return []
    database.ensure_connection()
    # Django's own cursors bind parameters on the client, which cannot ask for binary results; this one runs on
    # the same connection, so in the report's transaction and snapshot.
    with psycopg.Cursor(database.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


def sketch_estimate(blob) -> int:
    """The estimated distinct ids of one stored sketch."""
    return round(datasketches.hll_sketch.deserialize(bytes(blob)).get_estimate()) if blob else 0


def ids_unpack(blob) -> array:
    """The ids of a set packed by earlier versions (sorted little-endian 64-bit integers): read only by the
    migration that turned the stored sets into sketches."""
    unpacked = array("q")
    unpacked.frombytes(bytes(blob) if blob is not None else b"")
    if sys.byteorder == "big":
        unpacked.byteswap()
    return unpacked
