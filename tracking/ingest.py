"""The ingester: the one code that records beacon hits and API events, a batch at a time.

Capture (tracking.capture) checks what needs no write and hands over typed items (tracking.items); they come here
from the queue (`manage.py ingest`) or, with no queue configured, straight from the request as a batch of one. Either
way the same function records them, in one transaction per batch:

    accepted items ─► definitions and refusals ─► repeats (hit ids, idempotency keys) ─► visitors (locked, the new
    ones created with their anonymous contacts) ─► contacts by email ─► each item in order: its visit, impression,
    event (conversion snapshot, attribution, channel), identification ─► rows inserted together ─► action runs
    (enqueued after commit)

Every rule of the spec lives in exactly one function below: the visit (`visit_continues`), attribution
(`_attributed_impression`), the event's columns (`event_new`), de-duplication (`_repeats_resolve`). Speed comes from
doing each step once for the whole batch: one query loads every visitor of the batch, one insert writes every
impression.

Identification (a hit `identify`, a contact link, an API call with `visitor_id`) moves rows between contacts, so the
rows gathered so far are written first (a flush) and it then runs through tracking.services.contact_identify.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from custom_events.cache import custom_event_get_cached, custom_events_cache_clear
from custom_events.metadata_schema import SchemaMode, custom_event_metadata_violations, metadata_violations_message
from custom_events.models import CustomEvent, MarketingSource
from paminga.models import Account

from . import hooks
from .channels import channel_derive, utm_from_url
from .hits import HitError
from .items import ApiItem, HitItem, Item
from .links import contact_token_read
from .models import (
    METADATA_MAX_BYTES,
    URL_MAX_LENGTH,
    UTM_FIELDS,
    UTM_MAX_LENGTH,
    Contact,
    EventRecord,
    Impression,
    RecordedKey,
    RejectedHit,
    Session,
    Visitor,
)
from .rows import rows_insert, rows_select, rows_update, rows_values
from .services import (
    clip,
    contact_identify,
    email_normalize,
    metadata_prepare,
    rejected_hit_record,
    unknown_event_message,
)
from .texts import page_texts_store

logger = logging.getLogger(__name__)
Reason = RejectedHit.Reason

# A batch that fails on a unique or foreign key (a definition deleted while cached, a concurrent first hit of the same
# visitor) is tried again from the start, when the reads see the other transaction's rows.
ATTEMPTS = 3
# Recorded keys (RecordedKey) are namespaced by source, so an API key can never collide with a beacon hit id.
API_KEY_PREFIX = "api:"
BEACON_KEY_PREFIX = "beacon:"
PAGE_KEY_PREFIX = "page:"
QUEUE_KEY_PREFIX = "q:"
# A fresh hit is stamped with the server's clock at capture, so hits the beacon sends one after another keep their
# order (an impression, then the event it converts). A hit older than this (a retry) is back-dated by its age,
# measured on the sender's own clock, so a wrong clock in the browser does not matter.
HIT_CLOCK_TOLERANCE = timedelta(seconds=5)


@dataclass
class Outcome:
    """What became of one item: `recorded`, `identified`, `duplicate` (already recorded: nothing written) or
    `refused` (`error` says why: a HitError for a beacon hit, a ValidationError for an API event)."""

    status: str
    error: Exception | None = None
    # The event recorded; for a duplicate API event, the one recorded before (None once that has been deleted).
    record: EventRecord | None = None


def hit_occurred_at(*, age_ms: int, now: datetime) -> datetime:
    age = timedelta(milliseconds=age_ms)
    return now - age if age > HIT_CLOCK_TOLERANCE else now


def _campaign(utm: dict) -> tuple:
    return tuple((utm.get(field) or "") for field in UTM_FIELDS)


def visit_continues(*, session: Session | None, at: datetime, utm: dict | None, timeout: timedelta) -> bool:
    """Whether a hit at `at` belongs to `session` (the visitor's visit that was open then): its last activity is within
    the account's inactivity timeout and the hit comes from no other campaign. A hit without UTM parameters (a click
    inside the site) continues the visit; one whose UTM parameters differ starts a new visit, as analytics tools do,
    so each campaign gets its own visits. `utm` None: any campaign continues (API events carry no visit campaign)."""
    if session is None or at - session.last_seen_at > timeout:
        return False
    return not utm or not any(utm.values()) or _campaign(utm) == _campaign(session.utm)


def _unknown_event_api(slug: str) -> ValidationError:
    from .api import unknown_event_error

    return unknown_event_error(slug)


def _idempotency_reused() -> ValidationError:
    return ValidationError(
        {
            "idempotency_key": ValidationError(
                "This idempotency_key was already used for another event or contact: use a new key for a new event.",
                code="idempotency_key_reused",
            )
        }
    )


def ingest(items: Sequence[Item], *, accounts: dict[int, Account] | None = None, before_commit=None) -> list[Outcome]:
    """Records a batch of accepted items in one transaction and returns one Outcome per item, in order.

    Every item recorded has a key that the database keeps unique (a beacon hit's id; an API event's idempotency key,
    or capture's id of it), so an item delivered again (its consumer died before acknowledging it) is a duplicate
    and writes nothing twice. `before_commit()`, called last inside the transaction, may raise to undo the batch (the
    consumer checks there that it still holds the batch's shards)."""
    if not items:
        return []
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with transaction.atomic():
                outcomes = _Batch(items, accounts=accounts).run()
                if before_commit is not None:
                    before_commit()
                return outcomes
        except IntegrityError:
            if attempt == ATTEMPTS:
                raise
            for account in (accounts or Account.objects.in_bulk({i.account_id for i in items})).values():
                custom_events_cache_clear(account=account)
    raise AssertionError("unreachable")


def event_record(
    *,
    account: Account,
    custom_event: CustomEvent,
    contact: Contact,
    source: str = EventRecord.Source.API,
    occurred_at: datetime | None = None,
    metadata=None,
    idempotency_key: str | None = None,
    **columns,
) -> tuple[EventRecord, bool]:
    """Records one event for a known contact row through the ingester's writer (fixtures, the demo history, the
    automations benchmark): the same columns, snapshot and action runs as an ingested item.
    Returns (record, created)."""
    if custom_event.account_id != account.pk or contact.account_id != account.pk:
        raise ValueError("event_record() across accounts")
    with transaction.atomic():
        if idempotency_key:
            taken = RecordedKey.objects.filter(account=account, key=idempotency_key).first()
            existing = taken and EventRecord.objects.filter(account=account, pk=taken.record_id).first()
            if existing:
                return existing, False
        batch = _Batch([], accounts={account.pk: account})
        record = batch.event_new(
            account=account,
            custom_event=custom_event,
            contact=contact,
            source=source,
            at=occurred_at or timezone.now(),
            metadata=metadata,
            key=idempotency_key,
            **columns,
        )
        batch.flush()
    return record, True


class _Batch:
    def __init__(self, items: Sequence[Item], *, accounts: dict[int, Account] | None):
        self.items = list(items)
        self.outcomes: list[Outcome | None] = [None] * len(self.items)
        self.accounts = dict(accounts or {})
        self.definitions: dict[int, CustomEvent] = {}  # item index -> its event definition
        self.conversions: dict[int, bool] = {}  # item index -> the definition's conversion flag when it fired
        self.emails: dict[int, str] = {}  # item index -> normalized email (identify hits)
        self.visitors: dict[tuple[int, str], Visitor] = {}
        self.contacts: dict[tuple[int, str], Contact] = {}
        self.sources: dict[tuple[int, str], MarketingSource | None] = {}
        self.sessions: dict[int, Session] = {}  # pk -> the one instance of each loaded visit
        # Per visit (by id() of its instance): the latest impression known before the batch, (occurred_at, id).
        self.latest_before: dict[int, tuple[datetime, int] | None] = {}
        # Per visit: the batch's impressions so far, in order.
        self.batch_impressions: dict[int, list[Impression]] = defaultdict(list)
        # (account, key) -> the event recorded under it (None: a beacon event's, or one deleted since).
        self.keys_taken: dict[tuple[int, str], EventRecord | None] = {}
        self.repeats: dict[int, int] = {}  # item index -> the earlier item of the batch with the same API key
        self.ids_taken: set[tuple[int, str]] = set()
        # What the next flush writes.
        self.new_sessions: list[Session] = []
        self.moved_sessions: dict[int, Session] = {}
        self.moved_visitors: dict[int, Visitor] = {}
        self.new_impressions: list[Impression] = []
        self.new_events: list[EventRecord] = []
        self.new_keys: list[tuple[int, str, Impression | EventRecord]] = []  # (account, key, the row recorded)
        self.notes: list[tuple[Account, str, str, str, bool]] = []  # (account, reason, message, slug, recorded)

    # --- The steps ------------------------------------------------------------------------------------------------

    def run(self) -> list[Outcome]:
        self._accounts_load()
        self._definitions_resolve()
        self._repeats_load()
        self._repeats_resolve()
        self._visitors_load()
        self._contacts_load()
        self._latest_impressions_load()
        for index, item in enumerate(self.items):
            if self.outcomes[index] is None:
                if isinstance(item, HitItem):
                    self._hit(index, item)
                else:
                    self._api(index, item)
        self.flush()
        return self.outcomes

    def _pending(self):
        for index, item in enumerate(self.items):
            if self.outcomes[index] is None:
                yield index, item

    def _accounts_load(self) -> None:
        missing = {item.account_id for item in self.items} - self.accounts.keys()
        if missing:
            self.accounts |= Account.objects.filter(deleted_at__isnull=True).in_bulk(missing)
        for index, item in self._pending():
            if item.account_id not in self.accounts:  # deleted while its items waited in the queue
                self.outcomes[index] = Outcome("refused", HitError(Reason.INVALID, "The account no longer exists."))

    def _refuse(self, index: int, item: Item, error: Exception) -> None:
        self.outcomes[index] = Outcome("refused", error)
        # Items from the queue had their answer long ago: the event debugger is where a refusal now shows.
        if item.position:
            account = self.accounts[item.account_id]
            if isinstance(error, HitError):
                self.notes.append((account, error.code, error.message, error.slug, False))
            else:
                slug = item.event.slug
                self.notes.append((account, Reason.INVALID, f"API event “{slug}”: {error.messages[0]}", slug, False))

    def _definitions_resolve(self) -> None:
        """The definition each event fires: the one capture found (by id, even if renamed since; refused if deleted),
        else by slug (an item made without capture). The conversion flag is the one of when the event fired."""
        captured = {}
        by_account = defaultdict(set)
        for _, item in self._pending():
            if item.definition is not None:
                by_account[item.account_id].add(item.definition.id)
        for account_id, ids in by_account.items():
            captured |= CustomEvent.objects.filter(account_id=account_id, deleted_at__isnull=True).in_bulk(ids)
        for index, item in self._pending():
            account = self.accounts[item.account_id]
            if isinstance(item, HitItem) and item.hit.type == "identify":
                try:
                    self.emails[index] = email_normalize(item.hit.email)
                except ValidationError:
                    error = HitError(Reason.INVALID_EMAIL, "identify() needs a valid email address.", status=422)
                    self._refuse(index, item, error)
                continue
            if isinstance(item, HitItem) and item.hit.type != "event":
                continue
            slug = item.event.slug if isinstance(item, ApiItem) else item.hit.slug
            if item.definition is not None:
                definition = captured.get(item.definition.id)
                self.conversions[index] = item.definition.counts_as_conversion
            else:
                definition = custom_event_get_cached(account=account, slug=slug)
            if definition is not None:
                self.definitions[index] = definition
            elif isinstance(item, ApiItem):
                self._refuse(index, item, _unknown_event_api(slug))
            else:
                error = HitError(Reason.UNKNOWN_EVENT, unknown_event_message(slug), status=422, slug=slug)
                self._refuse(index, item, error)

    def _repeats_load(self) -> None:
        """The keys of the batch's items that are already recorded (one query per account), and the events recorded
        under the API keys among them."""
        keys = defaultdict(set)
        for _, item in self._pending():
            key = _item_key(item)
            if key:
                keys[item.account_id].add(key)
        for account_id, wanted in keys.items():
            # Most keys are new: one light query finds the few taken, and only their events are loaded.
            taken = dict(rows_values(RecordedKey, "key", "record_id", account_id=account_id, key=wanted))
            pages = {key for key in taken if key.startswith(PAGE_KEY_PREFIX)}
            self.ids_taken |= {(account_id, key) for key in pages}
            ids = {record_id for key, record_id in taken.items() if record_id and key not in pages}
            records = EventRecord.objects.filter(account_id=account_id, pk__in=ids).select_related("contact")
            records = records.in_bulk() if ids else {}
            for key, record_id in taken.items():
                if key not in pages:
                    self.keys_taken[(account_id, key)] = records.get(record_id)

    def _repeats_resolve(self) -> None:
        """Answers, in order, the items recorded before (their hit id or key is taken, before or earlier in this
        batch): nothing of them is written, not even their visit's last activity or a new visitor."""
        first_with_key: dict[tuple[int, str], int] = {}
        for index, item in self._pending():
            if isinstance(item, ApiItem):
                key = _api_key(item)
                if key:
                    self._api_repeat(index, item, (item.account_id, key), first_with_key)
                continue
            if item.hit.type == "identify":
                continue
            if item.hit.type == "impression":
                key = (item.account_id, PAGE_KEY_PREFIX + item.hit.id)
                taken = key in self.ids_taken
                self.ids_taken.add(key)
            else:
                key = (item.account_id, BEACON_KEY_PREFIX + item.hit.id)
                taken = key in self.keys_taken or key in first_with_key
                first_with_key.setdefault(key, index)
            if not taken:
                continue
            self.outcomes[index] = Outcome("duplicate")
            if not item.hit.retry and not item.position:
                # A retry finding its hit recorded is the protocol working (the answer to the first send was lost),
                # and so is a queue entry delivered again. A first send finding its id taken means a sender reuses
                # hit ids, and those hits are lost: show it.
                self.notes.append(
                    (
                        self.accounts[item.account_id],
                        Reason.DUPLICATE,
                        f"The hit id {item.hit.id} was already recorded, so this {item.hit.type} was ignored. Each hit "
                        "needs a new random id; only retries of the same hit may repeat it.",
                        item.hit.slug,
                        False,
                    )
                )

    def _api_repeat(self, index: int, item: ApiItem, key: tuple[int, str], first_with_key: dict) -> None:
        """An API event whose key was used before: answered as the earlier one when it names the same event and
        contact. A key reused for something else is the caller's bug, and answering "done" would lose that event
        silently: refused."""
        definition = self.definitions[index]
        if key in self.keys_taken:
            earlier = self.keys_taken[key]
            # An event deleted since (its definition, or by retention) can no longer be compared: its key still
            # says it was recorded.
            same = earlier is None or (
                earlier.custom_event_id == definition.pk and (earlier.contact.email or "") == item.event.email
            )
            if same:
                self.outcomes[index] = Outcome("duplicate", record=earlier)
        elif key in first_with_key:
            first = first_with_key[key]
            earlier = self.items[first].event
            same = self.definitions[first].pk == definition.pk and earlier.email == item.event.email
            if same:
                self.repeats[index] = first
        else:
            first_with_key[key] = index
            return
        if not same:
            self._refuse(index, item, _idempotency_reused())

    def _visitors_load(self) -> None:
        """Every visitor of the batch with its contact and latest visit, locked until commit (a concurrent writer of
        the same visitor waits, then sees this batch's visit); the missing ones created, each with its anonymous
        contact."""
        first_seen: dict[tuple[int, str], datetime] = {}
        for _, item in self._pending():
            uid = item.hit.visitor if isinstance(item, HitItem) else item.event.visitor_id
            if uid:
                first_seen.setdefault((item.account_id, uid), item.received_at)
        by_account = defaultdict(list)
        for account_id, uid in first_seen:
            by_account[account_id].append(uid)
        found = []
        for account_id in sorted(by_account):
            found += rows_select(Visitor, lock=True, account_id=account_id, uid=by_account[account_id])
        # Their contacts and latest visits are read after the lock, by statements of their own: a visitor a concurrent
        # batch just moved to a new visit or contact is then read with it (a join in the locking statement would keep
        # the rows it saw before it waited).
        contacts = {c.pk: c for c in rows_select(Contact, id={v.contact_id for v in found})} if found else {}
        current = {v.current_session_id for v in found if v.current_session_id}
        self.sessions = {s.pk: s for s in rows_select(Session, id=current)} if current else {}
        for visitor in found:
            visitor.contact = contacts[visitor.contact_id]
            visitor.current_session = self.sessions.get(visitor.current_session_id)
            self.visitors[(visitor.account_id, visitor.uid)] = visitor
        # Sorted: two batches creating some of the same visitors insert them in one order, and cannot deadlock.
        missing = sorted(key for key in first_seen if key not in self.visitors)
        if not missing:
            return
        contacts = [Contact(account_id=account_id) for account_id, _ in missing]
        rows_insert(contacts)
        visitors = [
            Visitor(account_id=account_id, uid=uid, contact=contact, last_seen_at=first_seen[(account_id, uid)])
            for (account_id, uid), contact in zip(missing, contacts, strict=True)
        ]
        # A concurrent first hit of one of these visitors fails this insert; the batch is then tried again.
        rows_insert(visitors)
        for visitor in visitors:
            self.visitors[(visitor.account_id, visitor.uid)] = visitor

    def _contacts_load(self) -> None:
        """The contacts of the API events without a visitor, by email: found with one query per account, the missing
        ones created with one insert, in the order of their emails (so that two batches creating some of the same
        contacts take their locks in the same order); one a concurrent request created first is found."""
        emails: dict[int, dict[str, datetime]] = defaultdict(dict)  # account -> email -> its first event's time
        for _, item in self._pending():
            if isinstance(item, ApiItem) and not item.event.visitor_id:
                emails[item.account_id].setdefault(item.event.email, item.received_at)
        for account_id, wanted in sorted(emails.items()):
            found = {c.email: c for c in Contact.objects.filter(account_id=account_id, email__in=wanted).order_by()}
            missing = sorted(wanted.keys() - found.keys())
            if missing:
                Contact.objects.bulk_create(
                    [Contact(account_id=account_id, email=email, identified_at=wanted[email]) for email in missing],
                    ignore_conflicts=True,
                )
                found |= {c.email: c for c in Contact.objects.filter(account_id=account_id, email__in=missing)}
            for email, contact in found.items():
                self.contacts[(account_id, email)] = contact

    def _converts(self, index: int) -> bool:
        """Whether the event of this item counts as a conversion: its definition's flag when it fired."""
        return self.conversions.get(index, self.definitions[index].counts_as_conversion)

    def _latest_impressions_load(self) -> None:
        """For the visits a conversion of the batch may be attributed in: their latest impression so far (one query)."""
        sessions = {}
        for index, item in self._pending():
            if index not in self.definitions or not self._converts(index):
                continue
            uid = item.hit.visitor if isinstance(item, HitItem) else item.event.visitor_id
            visitor = self.visitors.get((item.account_id, uid)) if uid else None
            if visitor is not None and visitor.current_session is not None:
                sessions[visitor.current_session.pk] = visitor.current_session
        if not sessions:
            return
        latest = Impression.objects.filter(account=OuterRef("account"), session=OuterRef("pk")).order_by(
            "-occurred_at", "-id"
        )
        rows = Session.objects.filter(pk__in=sessions).annotate(
            impression_id=Subquery(latest.values("id")[:1]), impression_at=Subquery(latest.values("occurred_at")[:1])
        )
        for pk, impression_id, impression_at in rows.values_list("pk", "impression_id", "impression_at"):
            found = (impression_at, impression_id) if impression_id is not None else None
            self.latest_before[id(sessions[pk])] = found

    # --- One item ---------------------------------------------------------------------------------------------------

    def _hit(self, index: int, item: HitItem) -> None:
        hit, account = item.hit, self.accounts[item.account_id]
        at = hit_occurred_at(age_ms=hit.age_ms, now=item.received_at)
        visitor = self.visitors[(account.pk, hit.visitor)]
        if hit.type == "identify":
            self.flush()
            contact_identify(account=account, visitor=visitor, email=self.emails[index])
            self.outcomes[index] = Outcome("identified")
            return
        utm = utm_from_url(hit.url)
        session = self._visit(account=account, visitor=visitor, at=at, utm=utm, url=hit.url, referrer=hit.referrer)
        if hit.type == "impression":
            if hit.contact_token:
                self._contact_link(account=account, visitor=visitor, token=hit.contact_token)
            impression = Impression(
                account=account,
                session=session,
                visitor=visitor,
                url=clip(hit.url, URL_MAX_LENGTH),
                title=clip(hit.title, 500),
                referrer=clip(hit.referrer, URL_MAX_LENGTH),
                channel=session.channel,
                occurred_at=at,
                **utm,
            )
            self.new_impressions.append(impression)
            self.new_keys.append((account.pk, PAGE_KEY_PREFIX + hit.id, impression))
            self.batch_impressions[id(session)].append(impression)
        else:
            metadata = hit.metadata
            if hit.metadata_dropped_bytes is None:  # metadata dropped for its size has its own note
                metadata = self._metadata_schema_check(account, self.definitions[index], hit.slug, metadata)
            record = self.event_new(
                account=account,
                custom_event=self.definitions[index],
                counts_as_conversion=self._converts(index),
                contact=visitor.contact,
                source=EventRecord.Source.BEACON,
                at=at,
                visitor=visitor,
                session=session,
                page_url=hit.url,
                utm=session.utm,
                marketing_channel=session.channel,
                metadata=metadata,
                metadata_dropped_bytes=hit.metadata_dropped_bytes,
                key=BEACON_KEY_PREFIX + hit.id,
            )
            if record.metadata_dropped:
                self.notes.append(
                    (
                        account,
                        Reason.METADATA_DROPPED,
                        f"Metadata of {record.metadata_bytes:,} bytes is over the {METADATA_MAX_BYTES:,}-byte limit: "
                        "it was dropped and the event was recorded without it.",
                        hit.slug,
                        True,
                    )
                )
        self.outcomes[index] = Outcome("recorded")

    # --- The metadata schema (custom_events/metadata_schema.py) -----------------------------------------------------

    def _metadata_schema_check(self, account: Account, custom_event: CustomEvent, slug: str, metadata):
        """The metadata to record, checked against the event's schema: each violation is listed in the event
        debugger; `warn` keeps the metadata, `enforce` records the event without it (as for the size limit, but not
        flagged metadata_dropped, which means over the size limit)."""
        violations = custom_event_metadata_violations(custom_event=custom_event, metadata=metadata)
        if not violations:
            return metadata
        enforce = custom_event.metadata_schema_mode == SchemaMode.ENFORCE
        outcome = "recorded without its metadata (enforce)" if enforce else "recorded with its metadata (warn)"
        message = f"{metadata_violations_message(violations)} The event was {outcome}."
        self.notes.append((account, Reason.METADATA_SCHEMA, message, slug, True))
        return None if enforce else metadata

    def _contact_link(self, *, account: Account, visitor: Visitor, token: str) -> None:
        """A page opened through a signed contact link identifies its visitor as that contact."""
        contact_id = contact_token_read(account=account, token=token)
        known = contact_id and Contact.objects.filter(account=account, pk=contact_id, email__isnull=False).first()
        if known:
            self.flush()
            contact_identify(account=account, visitor=visitor, email=known.email)
            return
        self.notes.append(
            (
                account,
                Reason.INVALID_CONTACT_TOKEN,
                "The page was opened through a contact link whose token is invalid, expired or names a deleted "
                "contact: the impression was recorded, the visitor was not identified.",
                "",
                True,
            )
        )

    def _api(self, index: int, item: ApiItem) -> None:
        event, account = item.event, self.accounts[item.account_id]
        if index in self.repeats:  # the same key as an earlier item of this batch, for the same event and contact
            self.outcomes[index] = Outcome("duplicate", record=self.outcomes[self.repeats[index]].record)
            return
        key = _api_key(item)
        visitor = session = None
        if event.visitor_id:
            # The backend knows the browser: identify it as this contact, and attribute like a beacon hit of its
            # current visit (without extending the visit: an API call is no activity on the site).
            visitor = self.visitors[(account.pk, event.visitor_id)]
            self.flush()
            contact = contact_identify(account=account, visitor=visitor, email=event.email)
            current = self._visit_open_at(account=account, visitor=visitor, at=item.received_at)
            if visit_continues(session=current, at=item.received_at, utm=None, timeout=_timeout(account)):
                session = current
        else:
            contact = self.contacts[(account.pk, event.email)]
        record = self.event_new(
            account=account,
            custom_event=self.definitions[index],
            counts_as_conversion=self._converts(index),
            contact=contact,
            source=EventRecord.Source.API,
            at=item.received_at,
            visitor=visitor,
            session=session,
            page_url=event.page_url,
            utm=event.utm,
            marketing_channel=event.marketing_channel,
            marketing_source=self._source(account, event.marketing_source),
            marketing_source_name=event.marketing_source,
            # Capture refused metadata that breaks an enforced schema; this notes `warn`, and the schema a definition
            # got while the event waited in the queue.
            metadata=self._metadata_schema_check(account, self.definitions[index], event.slug, event.metadata),
            key=key,
        )
        self.outcomes[index] = Outcome("recorded", record=record)

    def _source(self, account: Account, name: str) -> MarketingSource | None:
        """The account's marketing source with this name (case-insensitive), looked up once per batch."""
        from custom_events.selectors import marketing_source_match

        if not name:
            return None
        if (account.pk, name) not in self.sources:
            self.sources[(account.pk, name)] = marketing_source_match(account=account, name=name)
        return self.sources[(account.pk, name)]

    # --- Visits and attribution ---------------------------------------------------------------------------------------

    def _visit_open_at(self, *, account: Account, visitor: Visitor, at: datetime) -> Session | None:
        """The visitor's latest visit that had started by `at` (a late, retried hit joins the visit of its time)."""
        session = visitor.current_session
        if session is not None and session.started_at > at:
            self.flush()
            older = Session.objects.filter(visitor=visitor, started_at__lte=at).order_by("-last_seen_at", "-id").first()
            session = self.sessions.setdefault(older.pk, older) if older is not None else None
        return session

    def _visit(self, *, account: Account, visitor: Visitor, at: datetime, utm: dict, url: str, referrer: str):
        """The visit a beacon hit belongs to: the open one it continues, or a new one."""
        utm = {field: clip(utm.get(field), UTM_MAX_LENGTH) for field in UTM_FIELDS}
        session = self._visit_open_at(account=account, visitor=visitor, at=at)
        if visit_continues(session=session, at=at, utm=utm, timeout=_timeout(account)):
            if at > session.last_seen_at:
                session.last_seen_at = at
                if session.pk is not None:
                    self.moved_sessions[id(session)] = session
            return session
        session = Session(
            account=account,
            visitor=visitor,
            started_at=at,
            last_seen_at=at,
            landing_url=clip(url, URL_MAX_LENGTH),
            referrer=clip(referrer, URL_MAX_LENGTH),
            channel=channel_derive(utm=utm, referrer=referrer, page_url=url, own_domains=account.domains),
            **utm,
        )
        self.new_sessions.append(session)
        self.latest_before[id(session)] = None
        latest = visitor.current_session
        if latest is None or latest.started_at <= at:
            # The visitor's last_seen_at is the start of its latest visit: one write per visit, not one per hit.
            visitor.current_session = session
            visitor.last_seen_at = max(at, visitor.last_seen_at)
            self.moved_visitors[visitor.pk] = visitor
        return session

    def _attributed_impression(self, session: Session, at: datetime):
        """The most recent impression of the visit when the event happened (by time, then by recording order, as
        `ORDER BY occurred_at DESC, id DESC`): an Impression of this batch, the id of an earlier one, or None when the
        visit has none by then."""
        latest = self.latest_before.get(id(session), ...)
        if latest is ... or (latest is not None and latest[0] > at):
            # A visit loaded for a late hit, or an impression recorded before the batch that happened after the
            # event: the database answers, with the batch's rows written first.
            self.flush()
            before = Impression.objects.filter(session_id=session.pk, occurred_at__lte=at)
            return before.order_by("-occurred_at", "-id").values_list("id", flat=True).first()
        # Every impression recorded before the batch happened by `at`; `latest` is the last of them. A retried,
        # back-dated impression may arrive after a later one: the batch's are compared by time, then order.
        candidates = [(i.occurred_at, n, i) for n, i in enumerate(self.batch_impressions.get(id(session), ()))]
        in_batch = max((c for c in candidates if c[0] <= at), default=None, key=lambda c: (c[0], c[1]))
        if in_batch is not None and (latest is None or latest[0] <= in_batch[0]):
            return in_batch[2]
        return latest[1] if latest is not None else None

    def event_new(
        self,
        *,
        account: Account,
        custom_event: CustomEvent,
        contact: Contact,
        source: str,
        at: datetime,
        visitor: Visitor | None = None,
        session: Session | None = None,
        page_url: str = "",
        utm: dict | None = None,
        marketing_channel: str = "",
        marketing_source: MarketingSource | None = None,
        marketing_source_name: str = "",
        metadata=None,
        metadata_dropped_bytes: int | None = None,
        key: str | None = None,
        counts_as_conversion: bool | None = None,
    ) -> EventRecord:
        """One occurrence's row, queued for the next flush: the conversion flag snapshotted (editing the definition
        never rewrites history), metadata kept or dropped, strings clipped, the matched source's channel unless one
        is given, and a conversion attributed to the latest impression of its visit."""
        prepared = metadata_prepare(metadata, dropped_bytes=metadata_dropped_bytes)
        utm = utm or {}
        if marketing_source is not None and not marketing_channel:
            marketing_channel = marketing_source.channel
        record = EventRecord(
            account=account,
            custom_event=custom_event,
            contact=contact,
            visitor=visitor,
            session=session,
            source=source,
            occurred_at=at,
            page_url=clip(page_url, URL_MAX_LENGTH),
            marketing_channel=marketing_channel or "",
            marketing_source=marketing_source,
            marketing_source_name=clip(marketing_source_name, 200),
            metadata=prepared.value,
            metadata_dropped=prepared.dropped,
            metadata_bytes=prepared.size,
            # The snapshot: the definition's flag when the event fired (given by capture), or as it is now.
            is_conversion=custom_event.counts_as_conversion if counts_as_conversion is None else counts_as_conversion,
            **{field: clip(utm.get(field), UTM_MAX_LENGTH) for field in UTM_FIELDS},
        )
        if record.is_conversion and session is not None:
            attributed = self._attributed_impression(session, at)
            if isinstance(attributed, Impression):
                record.attributed_impression = attributed
            else:
                record.attributed_impression_id = attributed
        self.new_events.append(record)
        if key:
            self.new_keys.append((account.pk, key, record))
        return record

    # --- Writing --------------------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Writes what the items so far gathered: visits, impressions, events (each with one insert), the visits and
        visitors that moved, the events' action runs (enqueued after commit) and event debugger notes."""
        page_texts_store([*self.new_sessions, *self.new_impressions, *self.new_events])  # one look-up for the three
        rows_insert(self.new_sessions)
        for session in self.new_sessions:
            self.sessions[session.pk] = session
        rows_insert(self.new_impressions)
        if self.new_events:
            rows_insert(self.new_events)
            hooks.events_recorded(event_records=self.new_events)  # their action runs (automations)
        if self.new_keys:
            now = timezone.now()
            rows_insert(
                [
                    RecordedKey(account_id=account_id, key=key, record_id=row and row.pk, created_at=now)
                    for account_id, key, row in self.new_keys
                ]
            )
        rows_update(list(self.moved_sessions.values()), ["last_seen_at"])
        rows_update(list(self.moved_visitors.values()), ["current_session", "last_seen_at"])
        for account, reason, message, slug, recorded in self.notes:
            rejected_hit_record(account=account, reason=reason, message=message, slug=slug, recorded=recorded)
        self.new_sessions, self.new_impressions, self.new_events, self.new_keys, self.notes = [], [], [], [], []
        self.moved_sessions, self.moved_visitors = {}, {}


def _timeout(account: Account) -> timedelta:
    return timedelta(minutes=account.session_timeout_minutes)


def _item_key(item: Item) -> str | None:
    """The key an item is recorded under (None: an identify hit, recorded whenever it comes)."""
    if isinstance(item, ApiItem):
        return _api_key(item)
    if item.hit.type == "impression":
        return PAGE_KEY_PREFIX + item.hit.id
    if item.hit.type == "event":
        return BEACON_KEY_PREFIX + item.hit.id
    return None


def _api_key(item: ApiItem) -> str | None:
    """The stored idempotency key of an API event: the caller's, else capture's id of it, else (an item queued
    without one) its queue entry's id; so that an event delivered twice is recognised without a key from the
    caller."""
    if item.event.idempotency_key:
        return API_KEY_PREFIX + item.event.idempotency_key
    if item.capture_id:
        return QUEUE_KEY_PREFIX + item.capture_id
    if item.position:
        return f"{QUEUE_KEY_PREFIX}{item.position[0]}:{item.position[1]}"
    return None
