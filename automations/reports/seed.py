"""Realistic demo history for reports and benchmarks: visitors, contacts, visits, page views and custom events.

Rows are generated day by day, oldest first, with explicit ids (so that events can point at their visitor, visit
and attributed page view without reading anything back) and written in bulk: PostgreSQL's COPY, or bulk_create on
other databases (SQLite, for `make run`). The whole history is written in one transaction with the tables locked
against other writers, because the ids are taken from the tables' sequences up front.

The shape follows what a B2B marketing site sees: traffic grows over the period, dips at weekends and peaks in
working hours (in the account's time zone); visits come from a mix of channels with matching UTM parameters;
most visitors stay anonymous; some visits fire custom events, each on the page the visitor is on, with the
metadata a real integration would send (videoTitle, percentWatched, planTier...). Conversions are attributed to
the visit's most recent page view, as the beacon does, and one definition (visited-pricing-page) only began to
count as a conversion part-way through the period, so the history shows a definition that was later changed.
"""

import bisect
import json
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate

from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from custom_events.models import CustomEvent
from custom_events.services import custom_event_create
from paminga.models import Account
from paminga.progress import Progress
from tracking.models import Contact, EventRecord, Impression, PageText, Session, Visitor
from tracking.partitions import partitions_ensure
from tracking.texts import page_texts_hold, text_digest

SITE = "https://www.example.com"
PAGES = [
    ("/", 30),
    ("/product", 14),
    ("/product/video", 6),
    ("/pricing", 12),
    ("/demo", 4),
    ("/customers", 4),
    ("/about", 3),
    ("/contact", 2),
    ("/signup", 3),
    ("/whitepapers/q1", 4),
] + [(f"/blog/post-{i}", 1) for i in range(1, 21)]

# The custom events of the demo catalogue: (name, slug, description, counts as conversion, weight, pages fired on).
CATALOGUE = [
    (
        "Watched Product Video",
        "watched-product-video",
        "Fired when a visitor plays the product overview video.",
        False,
        38,
        ["/product/video", "/product", "/"],
    ),
    (
        "Visited Pricing Page",
        "visited-pricing-page",
        "High-intent: the visitor looked at pricing.",
        True,
        30,
        ["/pricing"],
    ),
    ("Requested Demo", "requested-demo", "The demo request form was submitted.", True, 9, ["/demo", "/pricing"]),
    (
        "Downloaded Whitepaper",
        "downloaded-whitepaper-q1",
        "Q1 whitepaper download.",
        False,
        23,
        ["/whitepapers/q1", "/blog/post-3", "/blog/post-7"],
    ),
]
# visited-pricing-page counted as a conversion only from this fraction of the period on (a later definition change).
PRICING_CONVERSION_FROM = 0.4

# (channel, weight, [(utm_source, utm_medium, [campaigns])], [referrers])
CHANNELS = [
    ("ORGANIC_SEARCH", 30, [], ["https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/"]),
    ("DIRECT_TRAFFIC", 20, [], [""]),
    ("PAID_SEARCH", 12, [("google", "cpc", ["brand", "competitors", "generic-crm"])], ["https://www.google.com/"]),
    ("EMAIL_MARKETING", 10, [("newsletter", "email", ["2026-monthly", "product-launch", "webinar-invite"])], [""]),
    ("ORGANIC_SOCIAL", 8, [], ["https://www.linkedin.com/", "https://x.com/"]),
    ("PAID_SOCIAL", 6, [("linkedin", "paid_social", ["abm-q1", "retargeting"])], ["https://www.linkedin.com/"]),
    ("REFERRAL", 7, [], ["https://www.g2.com/", "https://news.ycombinator.com/", "https://partner.example.org/"]),
    ("DISPLAY_AD", 3, [("adroll", "display", ["retargeting"])], [""]),
    ("AFFILIATE", 2, [("partnerstack", "affiliate", ["partners"])], [""]),
    ("VIDEO_HOSTING_PLATFORM", 2, [("youtube", "video", ["product-tour"])], ["https://www.youtube.com/"]),
]
API_CHANNELS = [("EMAIL_MARKETING", 3), ("OUTBOUND_CALL", 2), ("INBOUND_CALL", 2), ("PHYSICAL_EVENT", 1), ("", 4)]
API_SHARE = 0.08
# Events per visit: a fifth of visits fire none.
EVENTS_PER_VISIT = [(0, 20), (1, 35), (2, 25), (3, 12), (4, 8)]
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 10, 9, 10, 10, 9, 8, 6, 5, 4, 3, 2, 2, 1]
VIDEO_TITLES = [("Product Overview", 50), ("Feature Tour", 25), ("Customer Story: Acme", 15), ("Webinar Replay", 10)]
PLAN_TIERS = [("starter", 50), ("pro", 35), ("enterprise", 15)]
COMPANY_SIZES = [("1-10", 20), ("11-50", 30), ("51-200", 25), ("201-1000", 15), ("1000+", 10)]


class _Picker:
    """Weighted choice with precomputed cumulative weights (random.choices recomputes them on every call)."""

    def __init__(self, rnd: random.Random, weighted):
        self.values = [v for v, _ in weighted]
        self.cum = list(accumulate(w for _, w in weighted))
        self.total = self.cum[-1]
        self.rnd = rnd

    def __call__(self):
        return self.values[bisect.bisect_right(self.cum, self.rnd.random() * self.total)]


@dataclass
class SeedResult:
    visitors: int = 0
    contacts: int = 0
    sessions: int = 0
    impressions: int = 0
    events: int = 0
    conversions: int = 0
    seconds: float = 0.0
    by_table: dict = field(default_factory=dict)


# --- Bulk writing ---------------------------------------------------------------------------------------------


class _Json(Jsonb):
    """Metadata serialized once (its size is measured on the same text) and written as that text: psycopg would
    otherwise serialize a str again, as a JSON string."""

    def __init__(self, text: str):
        super().__init__(text, dumps=str)
        self.text = text


class _Writer:
    """Writes rows of one model: binary COPY on PostgreSQL (rows are encoded in C by psycopg), a plain multi-row
    INSERT elsewhere. Not bulk_create: it stamps auto_now_add fields with the current time, and the history's
    contacts and visitors must keep the creation dates of their history."""

    def __init__(self, model, columns: list[str]):
        self.model = model
        self.columns = columns
        self.fields = [model._meta.get_field(c) for c in columns]
        self.count = 0
        self.postgres = connection.vendor == "postgresql"
        table = connection.ops.quote_name(model._meta.db_table)
        names = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        if self.postgres:
            self.copy_sql = f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)"
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
                    [model._meta.db_table],
                )
                oids = dict(cursor.fetchall())
            self.types = [oids[f.column] for f in self.fields]
        else:
            self.insert_sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(self.fields))})"

    def write(self, rows: list[tuple]) -> None:
        if not rows:
            return
        self.count += len(rows)
        if self.postgres:
            with connection.cursor() as cursor, cursor.cursor.copy(self.copy_sql) as copy:
                copy.set_types(self.types)
                for row in rows:
                    copy.write_row(row)
            return
        params = [
            [
                f.get_db_prep_save(json.loads(v.text) if isinstance(v, _Json) else v, connection)
                for f, v in zip(self.fields, row, strict=True)
            ]
            for row in rows
        ]
        with connection.cursor() as cursor:
            cursor.executemany(self.insert_sql, params)


def _next_id(model) -> int:
    last = model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [model._meta.db_table])
            sequence = cursor.fetchone()[0]
            cursor.execute(f"SELECT last_value FROM {sequence}")
            last = max(last, cursor.fetchone()[0])
    return last + 1


def _sequences_reset(models) -> None:
    if connection.vendor != "postgresql":
        return  # SQLite's AUTOINCREMENT continues after the largest id inserted
    with connection.cursor() as cursor:
        for model in models:
            table = model._meta.db_table
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), GREATEST((SELECT MAX(id) FROM {table}), 1))",
                [table],
            )


def _tables_lock(models) -> None:
    """Blocks other writers (not readers) of the tables while the ids taken from them are used, until the
    transaction ends."""
    if connection.vendor != "postgresql":
        return
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute("SET LOCAL session_replication_role = replica")


def _tables_analyze(models) -> None:
    """Fresh statistics, so that the planner knows the new rows (autovacuum would, but only later)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


# The columns the history writes, per model, in the order its rows are built.
_COLUMNS = {
    PageText: ["id", "account_id", "digest", "value"],
    Contact: ["id", "account_id", "email", "score", "fields", "created_at", "identified_at"],
    Visitor: ["id", "account_id", "uid", "contact_id", "created_at", "last_seen_at"],
    Session: [
        "id",
        "account_id",
        "visitor_id",
        "started_at",
        "last_seen_at",
        "landing_url_text",
        "referrer_text",
        "channel",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
    ],
    Impression: [
        "id",
        "account_id",
        "session_id",
        "visitor_id",
        "url_text",
        "title_text",
        "referrer_text",
        "channel",
        "occurred_at",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
    ],
    EventRecord: [
        "id",
        "account_id",
        "custom_event_id",
        "contact_id",
        "visitor_id",
        "session_id",
        "source",
        "occurred_at",
        "page_url_text",
        "marketing_channel",
        "marketing_source_id",
        "marketing_source_name",
        "metadata",
        "metadata_dropped",
        "metadata_bytes",
        "is_conversion",
        "attributed_impression_id",
        "created_at",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
    ],
}
_MODELS = list(_COLUMNS)


# --- Generation -----------------------------------------------------------------------------------------------


def demo_definitions_ensure(*, account: Account) -> list[CustomEvent]:
    """The demo catalogue's custom events in the account, created when missing (idempotent)."""
    existing = {e.slug: e for e in CustomEvent.objects.filter(account=account)}
    events = []
    for name, slug, description, conversion, _weight, _pages in CATALOGUE:
        event = existing.get(slug) or custom_event_create(
            account=account, name=name, slug=slug, description=description, counts_as_conversion=conversion
        )
        events.append(event)
    return events


def demo_history_create(
    *,
    account: Account,
    events: int,
    days: int = 365,
    random_seed: int = 1,
    end: datetime | None = None,
    log=None,
    progress: Progress | None = None,
) -> SeedResult:
    """Writes `events` custom event occurrences (and the visitors, visits and page views around them) spread over
    the `days` days before `end`, into the account. Adds to whatever history the account already has. `progress`
    counts the events as they are written."""
    if events < 0 or days < 1:
        raise ValueError("events must be >= 0 and days >= 1")
    started = time.monotonic()
    rnd = random.Random(random_seed)
    definitions = demo_definitions_ensure(account=account)
    by_slug = {d.slug: d for d in definitions}
    tz = account.tzinfo
    end = (end or timezone.now()).astimezone(UTC).replace(microsecond=0)
    first_day = end.astimezone(tz).date() - timedelta(days=days - 1)
    result = SeedResult()
    if events == 0:
        return result

    # Each month its own partition (PostgreSQL), rather than the default partition that takes rows of months without.
    partitions_ensure(first_day - timedelta(days=1), end)
    with transaction.atomic():
        _tables_lock(_MODELS)
        page_texts_hold(account_id=account.pk)  # the texts it reuses stay until it commits
        ids = {m: _next_id(m) for m in _MODELS}
        writers = {model: _Writer(model, columns) for model, columns in _COLUMNS.items()}
        generator = _History(
            rnd=rnd,
            account=account,
            definitions=by_slug,
            ids=ids,
            writers=writers,
            first_day=first_day,
            days=days,
            end=end,
            events=events,
        )
        _run_alongside_writes(generator, writers, log, progress)
        _sequences_reset(_MODELS)
    _tables_analyze(_MODELS)
    result.contacts = writers[Contact].count
    result.visitors = writers[Visitor].count
    result.sessions = writers[Session].count
    result.impressions = writers[Impression].count
    result.events = writers[EventRecord].count
    result.conversions = generator.conversions
    result.seconds = time.monotonic() - started
    return result


def _run_alongside_writes(generator: "_History", writers: dict, log, progress: Progress | None = None) -> None:
    """Generates rows in a second thread while this one writes them: the database indexes one batch while Python
    builds the next (COPY waits on the server with the GIL released)."""
    batches: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()

    def sink(model, rows):
        if stop.is_set():
            raise RuntimeError("writing stopped")
        batches.put((model, rows))

    def produce():
        try:
            generator.run(log=log)
        except BaseException as exc:  # noqa: BLE001 - handed to the writing thread, which raises it
            batches.put(exc)
        else:
            batches.put(None)

    generator.sink = sink
    thread = threading.Thread(target=produce, name="seed-generator", daemon=True)
    thread.start()
    try:
        while (item := batches.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            model, rows = item
            writers[model].write(rows)
            if progress is not None and model is EventRecord:
                progress.update(len(rows))
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                batches.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


class _History:
    FLUSH_ROWS = 20000

    def __init__(self, *, rnd, account, definitions, ids, writers, first_day: date, days, end, events):
        self.rnd = rnd
        self.account = account
        self.account_id = account.pk
        self.tz = account.tzinfo
        self.ids = ids
        self.writers = writers
        self.first_day = first_day
        self.days = days
        self.end = end
        self.events = events
        self.conversions = 0
        self.emitted = dict.fromkeys(writers, 0)
        self.sink = lambda model, rows: writers[model].write(rows)
        self.buffers = {model: [] for model in writers}
        catalogue = [c for c in CATALOGUE if c[1] in definitions]
        self.definitions = definitions
        self.pick_event = _Picker(rnd, [(c[1], c[4]) for c in catalogue])
        self.event_pages = {c[1]: c[5] for c in catalogue}
        self.pick_page = _Picker(rnd, PAGES)
        self.pick_channel = _Picker(rnd, [(c, w) for c, w, _utm, _refs in CHANNELS])
        self.channel_info = {c: (utm, refs) for c, _w, utm, refs in CHANNELS}
        self.pick_api_channel = _Picker(rnd, API_CHANNELS)
        self.pick_events_per_visit = _Picker(rnd, EVENTS_PER_VISIT)
        self.pick_hour = _Picker(rnd, list(enumerate(HOUR_WEIGHTS)))
        self.pick_video = _Picker(rnd, VIDEO_TITLES)
        self.pick_tier = _Picker(rnd, PLAN_TIERS)
        self.pick_size = _Picker(rnd, COMPANY_SIZES)
        self.pricing_conversion_from = first_day + timedelta(days=int(days * PRICING_CONVERSION_FROM))
        self.visitors: list[tuple[int, int]] = []  # (visitor id, contact id)
        # The account's page texts by value: those it holds, and those written since (tracking.texts).
        self.texts = dict(PageText.objects.filter(account=account).values_list("value", "pk"))
        self.api_contacts: list[int] = []

    def _take_id(self, model) -> int:
        value = self.ids[model]
        self.ids[model] = value + 1
        return value

    def _text(self, value: str) -> int | None:
        """The id of a page text of the account, written the first time it is used."""
        if not value:
            return None
        pk = self.texts.get(value)
        if pk is None:
            pk = self.texts[value] = self._take_id(PageText)
            self._emit(PageText, (pk, self.account_id, text_digest(value), value))
        return pk

    def _emit(self, model, row) -> None:
        buffer = self.buffers[model]
        buffer.append(row)
        self.emitted[model] += 1
        if len(buffer) >= self.FLUSH_ROWS:
            self._flush(model)

    def _flush(self, model) -> None:
        if self.buffers[model]:
            self.sink(model, self.buffers[model])
        self.buffers[model] = []

    def _flush_all(self) -> None:
        # Parents before children: the foreign keys are checked on every row.
        for model in (PageText, Contact, Visitor, Session, Impression, EventRecord):
            self._flush(model)

    def _people(self) -> None:
        rnd = self.rnd
        start = datetime.combine(self.first_day, datetime.min.time(), tzinfo=self.tz).astimezone(UTC)
        n_visitors = max(20, self.events // 12)
        for _ in range(n_visitors):
            contact_id = self._take_id(Contact)
            visitor_id = self._take_id(Visitor)
            created = start - timedelta(seconds=rnd.randrange(0, 90 * 86400))
            identified = rnd.random() < 0.25
            self._emit(
                Contact,
                (
                    contact_id,
                    self.account_id,
                    f"contact{contact_id}@customers.example" if identified else None,
                    rnd.randrange(0, 60) if identified else 0,
                    {},
                    created,
                    created + timedelta(days=rnd.randrange(0, 30)) if identified else None,
                ),
            )
            self._emit(Visitor, (visitor_id, self.account_id, f"seed-{visitor_id:x}", contact_id, created, self.end))
            self.visitors.append((visitor_id, contact_id))
        for _ in range(max(5, self.events // 100)):
            contact_id = self._take_id(Contact)
            created = start - timedelta(seconds=rnd.randrange(0, 90 * 86400))
            email = f"contact{contact_id}@accounts.example"
            self._emit(Contact, (contact_id, self.account_id, email, rnd.randrange(0, 80), {}, created, created))
            self.api_contacts.append(contact_id)
        self._flush_all()

    def _day_quotas(self) -> list[int]:
        rnd = self.rnd
        weights = []
        for i in range(self.days):
            day = self.first_day + timedelta(days=i)
            growth = 1.0 + 0.6 * i / max(1, self.days - 1)
            weekend = 0.55 if day.weekday() >= 5 else 1.0
            weights.append(growth * weekend * rnd.uniform(0.85, 1.15))
        total = sum(weights)
        quotas = [int(self.events * w / total) for w in weights]
        for i in range(self.events - sum(quotas)):  # distribute the rounding remainder
            quotas[-1 - (i % self.days)] += 1
        return quotas

    def _metadata(self, slug: str):
        rnd = self.rnd
        if rnd.random() < 0.002:
            return None, True, 4096 + rnd.randrange(1, 2000)
        if slug == "watched-product-video":
            value = {"videoTitle": self.pick_video(), "percentWatched": rnd.randrange(5, 101)}
        elif slug in ("visited-pricing-page",):
            value = {"planTier": self.pick_tier()}
        elif slug == "requested-demo":
            value = {"planTier": self.pick_tier(), "companySize": self.pick_size()}
        elif slug == "downloaded-whitepaper-q1":
            value = {"title": "The State of B2B Marketing 2026", "format": "pdf" if rnd.random() < 0.8 else "epub"}
        else:
            return None, False, 0
        text = json.dumps(value, separators=(",", ":"))
        return _Json(text), False, len(text.encode())

    def _is_conversion(self, slug: str, day: date) -> bool:
        if slug == "visited-pricing-page" and day < self.pricing_conversion_from:
            return False
        return self.definitions[slug].counts_as_conversion

    def _event(self, *, slug, day, at, contact_id, visitor_id, session_id, source, page_url, channel, utm, impression):
        metadata, dropped, size = self._metadata(slug)
        conversion = self._is_conversion(slug, day)
        self.conversions += conversion
        self._emit(
            EventRecord,
            (
                self._take_id(EventRecord),
                self.account_id,
                self.definitions[slug].pk,
                contact_id,
                visitor_id,
                session_id,
                source,
                at,
                self._text(page_url),
                channel,
                None,
                "",
                metadata,
                dropped,
                size,
                conversion,
                impression if conversion else None,
                at + timedelta(milliseconds=self.rnd.randrange(5, 900)),
                *utm,
            ),
        )

    def _visit(self, day: date, quota_left: int) -> int:
        """One visit on `day`; returns the number of events it fired."""
        rnd = self.rnd
        local = datetime(day.year, day.month, day.day, self.pick_hour(), rnd.randrange(60), rnd.randrange(60))
        start = local.replace(tzinfo=self.tz).astimezone(UTC)
        if start >= self.end:
            start = self.end - timedelta(seconds=rnd.randrange(60, 3600))
        # Returning visitors are more likely: a skewed pick from the pool.
        visitor_id, contact_id = self.visitors[int(len(self.visitors) * rnd.random() ** 1.6)]
        channel = self.pick_channel()
        utm_options, referrers = self.channel_info[channel]
        utm = ("", "", "", "", "")
        if utm_options:
            source, medium, campaigns = utm_options[0]
            utm = (source, medium, rnd.choice(campaigns), "", "")
        referrer = rnd.choice(referrers)
        session_id = self._take_id(Session)
        n_pages = 1
        while n_pages < 8 and rnd.random() < 0.55:
            n_pages += 1
        n_events = min(quota_left, self.pick_events_per_visit())
        pages = []
        at = start
        landing_query = f"?utm_source={utm[0]}&utm_medium={utm[1]}&utm_campaign={utm[2]}" if utm[0] else ""
        for i in range(n_pages):
            if i:
                at = at + timedelta(seconds=int(rnd.expovariate(1 / 70)) + 3)
            if n_events and i == n_pages - 1 and rnd.random() < 0.5:
                path = self.event_pages[self.pick_event()][0]
            else:
                path = self.pick_page()
            url = SITE + path + (landing_query if i == 0 else "")
            imp_id = self._take_id(Impression)
            pages.append((at, imp_id, url))
            self._emit(
                Impression,
                (
                    imp_id,
                    self.account_id,
                    session_id,
                    visitor_id,
                    self._text(url),
                    self._text(path.strip("/").replace("-", " ").title() or "Home"),
                    self._text(referrer if i == 0 else SITE + "/"),
                    channel,
                    at,
                    *(utm if i == 0 else ("", "", "", "", "")),
                ),
            )
        last = pages[-1][0]
        page_times = [p[0] for p in pages]
        for _ in range(n_events):
            slug = self.pick_event()
            event_at = start + timedelta(seconds=rnd.uniform(2, (last - start).total_seconds() + 120))
            idx = bisect.bisect_right(page_times, event_at) - 1
            _t, imp_id, url = pages[max(idx, 0)]
            self._event(
                slug=slug,
                day=day,
                at=event_at.replace(microsecond=0),
                contact_id=contact_id,
                visitor_id=visitor_id,
                session_id=session_id,
                source="beacon",
                page_url=url,
                channel=channel,
                utm=utm,
                impression=imp_id,
            )
            last = max(last, event_at)
        self._emit(
            Session,
            (
                session_id,
                self.account_id,
                visitor_id,
                start,
                last,
                self._text(pages[0][2]),
                self._text(referrer),
                channel,
                *utm,
            ),
        )
        return n_events

    def run(self, log=None) -> None:
        rnd = self.rnd
        self._people()
        for i, quota in enumerate(self._day_quotas()):
            day = self.first_day + timedelta(days=i)
            api = sum(1 for _ in range(quota) if rnd.random() < API_SHARE)
            for _ in range(api):
                self._api_event(day)
            left = quota - api
            while left > 0:
                left -= self._visit(day, left)
            if log and (i + 1) % 30 == 0:
                log(f"  {day}: {self.emitted[EventRecord]:,} events")
        self._flush_all()

    def _api_event(self, day: date) -> None:
        rnd = self.rnd
        local = datetime(day.year, day.month, day.day, self.pick_hour(), rnd.randrange(60), rnd.randrange(60))
        at = local.replace(tzinfo=self.tz).astimezone(UTC)
        if at >= self.end:
            at = self.end - timedelta(seconds=rnd.randrange(60, 3600))
        slug = "requested-demo" if rnd.random() < 0.5 and "requested-demo" in self.definitions else self.pick_event()
        channel = self.pick_api_channel()
        utm = ("newsletter", "email", "2026-monthly", "", "") if channel == "EMAIL_MARKETING" else ("",) * 5
        self._event(
            slug=slug,
            day=day,
            at=at,
            contact_id=rnd.choice(self.api_contacts),
            visitor_id=None,
            session_id=None,
            source="api",
            page_url="",
            channel=channel,
            utm=utm,
            impression=None,
        )
