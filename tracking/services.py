"""Writes for tracking. `event_record` is the one path every custom event takes, from the beacon and the API."""

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from automations.models import Action
from custom_events.models import CustomEvent, MarketingSource, validate_custom_event_slug
from paminga.models import Account

from . import sql
from .cache import custom_event_get_cached, custom_events_cache_clear
from .channels import channel_derive, utm_from_url
from .hits import Hit, HitError
from .links import contact_token_read
from .models import (
    METADATA_MAX_BYTES,
    URL_MAX_LENGTH,
    UTM_FIELDS,
    UTM_MAX_LENGTH,
    Contact,
    ContactListMembership,
    ContactTag,
    EventRecord,
    Impression,
    RejectedHit,
    Session,
    Visitor,
)
from .selectors import impression_latest_id, visitor_for_hit

Reason = RejectedHit.Reason


def email_normalize(email: str) -> str:
    """The stored form of an email address, or ValidationError(code="invalid_email")."""
    email = (email or "").strip().lower()
    try:
        if len(email) > 254:
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError:
        raise ValidationError("Enter a valid email address.", code="invalid_email") from None
    return email


def contact_get_or_create(*, account: Account, email: str) -> tuple[Contact, bool]:
    """The account's contact with this email (case-insensitive), created if there is none."""
    email = email_normalize(email)
    contact = Contact.objects.filter(account=account, email=email).first()
    if contact is not None:
        return contact, False
    try:
        with transaction.atomic():
            return Contact.objects.create(account=account, email=email, identified_at=timezone.now()), True
    except IntegrityError:
        # A concurrent request created it first.
        return Contact.objects.get(account=account, email=email), False


@dataclass(frozen=True)
class Metadata:
    value: dict | None
    size: int
    dropped: bool


def metadata_size(metadata) -> int:
    """Bytes of the compact UTF-8 JSON serialization: what the spec's 4,096-byte limit measures."""
    return len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())


def metadata_prepare(metadata) -> Metadata:
    """Metadata to store: kept when at most 4,096 bytes, dropped (and flagged) when larger."""
    if metadata is None or metadata == {}:
        return Metadata(value=None if metadata is None else {}, size=0 if metadata is None else 2, dropped=False)
    if not isinstance(metadata, dict):
        raise ValidationError("Metadata must be a JSON object.", code="invalid_metadata")
    size = metadata_size(metadata)
    if size > METADATA_MAX_BYTES:
        return Metadata(value=None, size=size, dropped=True)
    return Metadata(value=metadata, size=size, dropped=False)


def _clip(value, limit: int) -> str:
    """A string cut to its column's length, without NUL characters (PostgreSQL text cannot store them)."""
    return (value or "").replace("\x00", "")[:limit] if isinstance(value, str) else ""


def _event_record_new(
    *,
    account: Account,
    custom_event: CustomEvent,
    contact: Contact | None,
    visitor: Visitor | None = None,
    session: Session | None = None,
    marketing_source: MarketingSource | None = None,
    **values,
) -> EventRecord:
    """The unsaved row of one occurrence: its relations, and its own columns by `_event_record_values`."""
    return EventRecord(
        account=account,
        custom_event=custom_event,
        contact=contact,
        visitor=visitor,
        session=session,
        marketing_source=marketing_source,
        **_event_record_values(custom_event=custom_event, marketing_source=marketing_source, **values),
    )


def _event_record_values(
    *,
    custom_event: CustomEvent,
    source: str,
    occurred_at: datetime,
    page_url: str = "",
    utm: dict | None = None,
    marketing_channel: str = "",
    marketing_source: MarketingSource | None = None,
    marketing_source_name: str = "",
    metadata=None,
    metadata_dropped_bytes: int | None = None,
    idempotency_key: str | None = None,
) -> dict:
    """The values of one occurrence's own columns (not its relations): the conversion flag snapshotted, metadata kept
    or dropped, strings clipped, the matched source's channel unless one is given."""
    prepared = metadata_prepare(metadata)
    if metadata_dropped_bytes is not None:
        prepared = Metadata(value=None, size=metadata_dropped_bytes, dropped=True)
    utm = utm or {}
    if marketing_source is not None and not marketing_channel:
        marketing_channel = marketing_source.channel
    return {
        "source": source,
        "occurred_at": occurred_at,
        "page_url": _clip(page_url, URL_MAX_LENGTH),
        "marketing_channel": marketing_channel or "",
        "marketing_source_name": _clip(marketing_source_name, 200),
        "metadata": prepared.value,
        "metadata_dropped": prepared.dropped,
        "metadata_bytes": prepared.size,
        "is_conversion": custom_event.counts_as_conversion,
        "idempotency_key": idempotency_key or None,
        **{field: _clip(utm.get(field), UTM_MAX_LENGTH) for field in UTM_FIELDS},
    }


def event_record(
    *,
    account: Account,
    custom_event: CustomEvent,
    contact: Contact,
    source: str,
    occurred_at: datetime | None = None,
    visitor: Visitor | None = None,
    session: Session | None = None,
    page_url: str = "",
    utm: dict | None = None,
    marketing_channel: str = "",
    marketing_source: MarketingSource | None = None,
    marketing_source_name: str = "",
    metadata=None,
    metadata_dropped_bytes: int | None = None,
    idempotency_key: str | None = None,
) -> tuple[EventRecord, bool]:
    """Records one occurrence of a custom event and queues its actions. Returns (record, created).

    With an idempotency key already recorded for the account, returns the existing record and does nothing.
    Metadata over 4,096 bytes is dropped and flagged (callers that must refuse it check before calling);
    `metadata_dropped_bytes` says the sender already dropped metadata of that size (the beacon measures it in the
    browser, so an oversized object is never sent).
    """
    if custom_event.account_id != account.pk or contact.account_id != account.pk:
        raise ValueError("event_record() across accounts")
    occurred_at = occurred_at or timezone.now()
    record = _event_record_new(
        account=account,
        custom_event=custom_event,
        contact=contact,
        source=source,
        occurred_at=occurred_at,
        visitor=visitor,
        session=session,
        page_url=page_url,
        utm=utm,
        marketing_channel=marketing_channel,
        marketing_source=marketing_source,
        marketing_source_name=marketing_source_name,
        metadata=metadata,
        metadata_dropped_bytes=metadata_dropped_bytes,
        idempotency_key=idempotency_key,
    )
    is_conversion = record.is_conversion
    from automations.services import action_runs_create

    # Its own transaction, or part of the caller's: no savepoint, since a repeated idempotency key does not fail the
    # INSERT (ON CONFLICT DO NOTHING). An exception in here leaves the caller's transaction to roll back.
    with transaction.atomic(savepoint=False):
        if is_conversion and session is not None:
            # The most recent impression in the visit when the event happened (none when the visit has none).
            record.attributed_impression_id = impression_latest_id(session=session, at=occurred_at)
        if not sql.insert_or_ignore(record):
            return EventRecord.objects.get(account=account, idempotency_key=idempotency_key), False
        # Most events have no actions: a cheap check spares them the run creation's query.
        if sql.exists(Action, custom_event_id=custom_event.pk):
            action_runs_create(event_record=record)
    return record, True


# --- Visitors, sessions and identification -------------------------------------------------------------------


def visitor_get_or_create(*, account: Account, uid: str, now: datetime) -> Visitor:
    """The account's visitor with this beacon id (with its contact and latest visit loaded); a new one gets its own
    anonymous contact."""
    visitor = visitor_for_hit(account=account, uid=uid)
    if visitor is not None:
        return visitor
    with transaction.atomic(savepoint=False):
        contact = Contact(account=account)
        sql.insert_or_ignore(contact)
        visitor = Visitor(account=account, uid=uid, contact=contact, last_seen_at=now, current_session=None)
        if sql.insert_or_ignore(visitor):
            return visitor
        # A concurrent first hit of the same visitor won: use its visitor, drop the contact made for this one.
        contact.delete()
    return visitor_for_hit(account=account, uid=uid)


def _campaign(utm: dict) -> tuple:
    return tuple((utm.get(field) or "") for field in UTM_FIELDS)


# A visit's last activity is written when it moved by at least this much: most hits of a visit come seconds apart
# (a page view, then the events on that page), and skipping their UPDATE keeps a hit to one write. A visit may
# therefore end up to this much earlier than the exact timeout.
SESSION_ACTIVITY_PRECISION = timedelta(minutes=1)


def session_current(*, account: Account, visitor: Visitor, now: datetime) -> Session | None:
    """The visitor's visit still open at `now`: its last activity is within the account's inactivity timeout."""
    # The latest visit is kept on the visitor (session_for_hit is where visits start).
    session = visitor.current_session
    if session is not None and session.started_at > now:
        # A late (retried) hit joins the visit that was open when it happened, not a later one.
        session = Session.objects.filter(visitor=visitor, started_at__lte=now).order_by("-last_seen_at", "-id").first()
    if session is None or now - session.last_seen_at > timedelta(minutes=account.session_timeout_minutes):
        return None
    return session


def _visitor_lock(visitor: Visitor) -> bool:
    """Locks the visitor's row until the transaction ends, before a hit starts a visit: a concurrent hit of the same
    visitor about to start one waits here, then sees this one's. Returns whether the visitor's latest visit changed
    since it was read (and loads the new one)."""
    current_id = (
        Visitor.objects.select_for_update().filter(pk=visitor.pk).values_list("current_session_id", flat=True).get()
    )
    if current_id == visitor.current_session_id:
        return False
    visitor.current_session = Session.objects.filter(pk=current_id).first() if current_id else None
    return True


def session_for_hit(
    *,
    account: Account,
    visitor: Visitor,
    now: datetime,
    utm: dict | None = None,
    landing_url: str = "",
    referrer: str = "",
    channel: str = "",
) -> Session:
    """The visit a hit belongs to, started when there is none open or when the hit comes from another campaign.

    A hit without UTM parameters (a click inside the site) continues the open visit; a hit whose UTM parameters
    differ from the visit's starts a new one, as analytics tools do, so each campaign gets its own visits.
    """
    utm = {field: _clip((utm or {}).get(field), UTM_MAX_LENGTH) for field in UTM_FIELDS}

    def continued(session: Session | None) -> bool:
        return session is not None and (not any(utm.values()) or _campaign(utm) == _campaign(session.utm))

    session = session_current(account=account, visitor=visitor, now=now)
    if not continued(session) and _visitor_lock(visitor):
        # Another hit of this visitor started a visit meanwhile: this hit may belong to it.
        session = session_current(account=account, visitor=visitor, now=now)
    if continued(session):
        if now - session.last_seen_at >= SESSION_ACTIVITY_PRECISION:
            sql.move_forward(session, "last_seen_at", now)
        return session
    session = Session(
        account=account,
        visitor=visitor,
        started_at=now,
        last_seen_at=now,
        landing_url=_clip(landing_url, URL_MAX_LENGTH),
        referrer=_clip(referrer, URL_MAX_LENGTH),
        channel=channel or "",
        **utm,
    )
    sql.insert_or_ignore(session)
    latest = visitor.current_session
    if latest is None or latest.started_at <= now:
        # The visitor's last_seen_at is the start of its latest visit: one write per visit, not one per hit.
        sql.update_row(visitor, current_session=session, last_seen_at=max(now, visitor.last_seen_at))
    return session


def contact_merge(*, source: Contact, target: Contact) -> Contact:
    """Moves everything of `source` (an anonymous contact) into `target` and deletes `source`, in one transaction:
    its visitors (and so their sessions and impressions), events, tags, lists, score and fields."""
    if source.pk == target.pk or source.account_id != target.account_id:
        raise ValueError("contact_merge() needs two contacts of one account")
    from automations.reports.services import report_contact_events_moving

    with transaction.atomic():
        # The report rollups hold the source among the unique contacts of its days: mark those days for a rebuild.
        report_contact_events_moving(contact=source)
        Visitor.objects.filter(contact=source).update(contact=target)
        EventRecord.objects.filter(contact=source).update(contact=target)
        existing_tags = set(ContactTag.objects.filter(contact=target).values_list("name", flat=True))
        ContactTag.objects.filter(contact=source).exclude(name__in=existing_tags).update(contact=target)
        existing_lists = set(
            ContactListMembership.objects.filter(contact=target).values_list("contact_list_id", flat=True)
        )
        ContactListMembership.objects.filter(contact=source).exclude(contact_list_id__in=existing_lists).update(
            contact=target
        )
        # Values the known contact already has win; the anonymous history only fills gaps.
        target.fields = {**(source.fields or {}), **(target.fields or {})}
        target.score += source.score
        target.save(update_fields=["fields", "score"])
        source.delete()
    return target


def contact_identify(*, account: Account, visitor: Visitor, email: str) -> Contact:
    """Makes the visitor a known contact. An anonymous visitor's earlier impressions and events become part of
    that contact's history (merged when the contact already exists); actions waiting for identification run."""
    from automations.services import action_runs_resume

    email = email_normalize(email)
    with transaction.atomic():
        current = Contact.objects.select_for_update().get(pk=visitor.contact_id)
        if current.email == email:
            return current
        known = Contact.objects.select_for_update().filter(account=account, email=email).first()
        if known is None and current.is_anonymous:
            current.email = email
            current.identified_at = timezone.now()
            current.save(update_fields=["email", "identified_at"])
            target = current
        elif known is None:
            # The browser belonged to someone else (a shared computer): the new person starts a history of their
            # own from here; the previous contact keeps theirs.
            target = Contact.objects.create(account=account, email=email, identified_at=timezone.now())
            Visitor.objects.filter(pk=visitor.pk).update(contact=target)
        elif current.is_anonymous:
            target = contact_merge(source=current, target=known)
        else:
            target = known
            Visitor.objects.filter(pk=visitor.pk).update(contact=target)
        visitor.contact = target
        action_runs_resume(contact=target)
    return target


# --- Impressions, the event debugger and beacon hits ---------------------------------------------------------


def _impression_new(
    *,
    account: Account,
    visitor: Visitor | None,
    session: Session | None,
    url: str,
    occurred_at: datetime,
    title: str = "",
    referrer: str = "",
    utm: dict | None = None,
    client_id: str | None = None,
) -> Impression:
    """The unsaved row of one page view, with strings clipped and its visit's channel."""
    return Impression(
        account=account,
        session=session,
        visitor=visitor,
        url=_clip(url, URL_MAX_LENGTH),
        title=_clip(title, 500),
        referrer=_clip(referrer, URL_MAX_LENGTH),
        channel=session.channel if session is not None else "",
        occurred_at=occurred_at,
        client_id=client_id or None,
        **{field: _clip((utm or {}).get(field), UTM_MAX_LENGTH) for field in UTM_FIELDS},
    )


def impression_record(
    *,
    account: Account,
    visitor: Visitor,
    session: Session,
    url: str,
    occurred_at: datetime,
    title: str = "",
    referrer: str = "",
    utm: dict | None = None,
    client_id: str | None = None,
) -> tuple[Impression, bool]:
    """Records one page view. Every impression goes through here (a place for hooks such as rollups).

    Returns (impression, created); with a client id already recorded for the account, (the existing one, False).
    """
    impression = _impression_new(
        account=account,
        visitor=visitor,
        session=session,
        url=url,
        occurred_at=occurred_at,
        title=title,
        referrer=referrer,
        utm=utm,
        client_id=client_id,
    )
    if not sql.insert_or_ignore(impression):
        return Impression.objects.get(account=account, client_id=client_id), False
    return impression, True


def rejected_hit_record(
    *, account: Account, reason: str, message: str, slug: str = "", excerpt: str = "", recorded: bool = False
) -> RejectedHit | None:
    """Adds an entry to the account's event debugger, within bounds so a flood of bad hits cannot fill the database:
    at most TRACKING_DEBUGGER_MAX_PER_MINUTE entries per account, reason and minute (counted in the cache: per
    process with the default in-memory cache, overall with Redis), and only the newest TRACKING_DEBUGGER_KEEP entries
    are kept (older ones are pruned at the first entry of each minute). Returns None when the entry was left out."""
    per_minute = settings.TRACKING_DEBUGGER_MAX_PER_MINUTE
    keep = settings.TRACKING_DEBUGGER_KEEP
    # One budget per reason, so that a flood of one kind cannot hide the others.
    key = f"tracking:debugger:{account.pk}:{reason}:{int(time.time() // 60)}"
    new_window = cache.add(key, 0, 120)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add() and incr()
        count = 1
    if count > per_minute:
        return None
    entry = RejectedHit.objects.create(
        account=account,
        reason=reason,
        message=_clip(message, 500),
        slug=_clip(slug, 200),
        excerpt=_clip(excerpt, 500),
        recorded=recorded,
    )
    if new_window:
        cutoff = RejectedHit.objects.filter(account=account).order_by("-id").values_list("id", flat=True)[keep:][:1]
        if cutoff:
            RejectedHit.objects.filter(account=account, id__lte=cutoff[0]).delete()
    return entry


# A fresh hit is stamped with the server's clock, so hits the beacon sends one after another keep their order
# (an impression, then the event it converts). A hit older than this (a retry) is back-dated by its age, measured
# on the sender's own clock, so a wrong clock in the browser does not matter.
HIT_CLOCK_TOLERANCE = timedelta(seconds=5)


def hit_occurred_at(*, age_ms: int, now: datetime) -> datetime:
    age = timedelta(milliseconds=age_ms)
    return now - age if age > HIT_CLOCK_TOLERANCE else now


@dataclass(frozen=True)
class HitOutcome:
    status: str  # "recorded", "duplicate" or "identified"


class _Duplicate(Exception):
    """Rolls back a repeated hit's transaction, so that a retry changes nothing (not even the visit's last activity)."""


def _unknown_event_message(slug: str) -> str:
    message = f"No custom event “{slug}” in this account: it was never created, or it has been deleted."
    try:
        validate_custom_event_slug(slug)
    except ValidationError as exc:
        message += " " + " ".join(exc.messages)
    return message + " Check the slug under Settings → Account → Custom Events."


def hit_record(*, account: Account, hit: Hit, now: datetime) -> HitOutcome:
    """Records one beacon hit in one short transaction: the visitor (with its anonymous contact), the visit, then the
    impression, the custom event (through event_record) or the identification.

    Raises HitError before anything is written when the hit cannot be recorded (unknown slug, invalid email).
    A hit id that was already recorded changes nothing and answers "duplicate". Altered hits (metadata dropped, an
    invalid contact link token) are recorded and noted in the event debugger.
    """
    occurred_at = hit_occurred_at(age_ms=hit.age_ms, now=now)
    custom_event = email = None
    if hit.type == "event":
        custom_event = custom_event_get_cached(account=account, slug=hit.slug)
        if custom_event is None:
            raise HitError(Reason.UNKNOWN_EVENT, _unknown_event_message(hit.slug), status=422, slug=hit.slug)
    elif hit.type == "identify":
        try:
            email = email_normalize(hit.email)
        except ValidationError:
            raise HitError(Reason.INVALID_EMAIL, "identify() needs a valid email address.", status=422) from None
    try:
        return _hit_write(account=account, hit=hit, custom_event=custom_event, email=email, occurred_at=occurred_at)
    except IntegrityError:
        # A definition deleted while this process still had it cached: the event's foreign key fails. Answer what
        # the hit would get a moment later, rather than an error the beacon would retry for a day.
        if custom_event is None or CustomEvent.objects.filter(pk=custom_event.pk).exists():
            raise
        custom_events_cache_clear(account=account)
        raise HitError(Reason.UNKNOWN_EVENT, _unknown_event_message(hit.slug), status=422, slug=hit.slug) from None


def _hit_write(
    *, account: Account, hit: Hit, custom_event: CustomEvent | None, email: str | None, occurred_at: datetime
) -> HitOutcome:
    token_contact_id = contact_token_read(account=account, token=hit.contact_token) if hit.contact_token else None
    notes: list[tuple[str, str]] = []
    utm = utm_from_url(hit.url)
    if (
        settings.TRACKING_ONE_STATEMENT_HITS
        and connection.vendor == "postgresql"
        and hit.type != "identify"
        and not hit.contact_token
    ):
        outcome = _hit_in_one_statement(
            account=account, hit=hit, custom_event=custom_event, occurred_at=occurred_at, utm=utm
        )
        if outcome is not None:
            return outcome
    try:
        with transaction.atomic():
            visitor = visitor_get_or_create(account=account, uid=hit.visitor, now=occurred_at)
            if hit.type == "identify":
                contact_identify(account=account, visitor=visitor, email=email)
                return HitOutcome("identified")
            session = session_for_hit(
                account=account,
                visitor=visitor,
                now=occurred_at,
                utm=utm,
                landing_url=hit.url,
                referrer=hit.referrer,
                channel=channel_derive(utm=utm, referrer=hit.referrer, page_url=hit.url, own_domains=account.domains),
            )
            if hit.type == "impression":
                if hit.contact_token:
                    known = (
                        token_contact_id
                        and Contact.objects.filter(account=account, pk=token_contact_id, email__isnull=False).first()
                    )
                    if known:
                        contact_identify(account=account, visitor=visitor, email=known.email)
                    else:
                        notes.append(
                            (
                                Reason.INVALID_CONTACT_TOKEN,
                                "The page was opened through a contact link whose token is invalid, expired or names "
                                "a deleted contact: the impression was recorded, the visitor was not identified.",
                            )
                        )
                _, created = impression_record(
                    account=account,
                    visitor=visitor,
                    session=session,
                    url=hit.url,
                    title=hit.title,
                    referrer=hit.referrer,
                    utm=utm,
                    occurred_at=occurred_at,
                    client_id=hit.id,
                )
            else:
                record, created = event_record(
                    account=account,
                    custom_event=custom_event,
                    contact=visitor.contact,
                    source=EventRecord.Source.BEACON,
                    occurred_at=occurred_at,
                    visitor=visitor,
                    session=session,
                    page_url=hit.url,
                    utm=session.utm,
                    marketing_channel=session.channel,
                    metadata=hit.metadata,
                    metadata_dropped_bytes=hit.metadata_dropped_bytes,
                    idempotency_key=f"beacon:{hit.id}",
                )
                if created and record.metadata_dropped:
                    notes.append(
                        (
                            Reason.METADATA_DROPPED,
                            f"Metadata of {record.metadata_bytes:,} bytes is over the {METADATA_MAX_BYTES:,}-byte "
                            "limit: it was dropped and the event was recorded without it.",
                        )
                    )
            if not created:
                raise _Duplicate
            for reason, message in notes:
                rejected_hit_record(account=account, reason=reason, message=message, slug=hit.slug, recorded=True)
    except _Duplicate:
        return _hit_duplicate(account=account, hit=hit)
    return HitOutcome("recorded")


def _hit_duplicate(*, account: Account, hit: Hit) -> HitOutcome:
    if not hit.retry:
        # A retry finding its hit recorded is the protocol working (the answer to the first send was lost). A first
        # send finding its id taken means a sender reuses hit ids, and those hits are lost: show it.
        rejected_hit_record(
            account=account,
            reason=Reason.DUPLICATE,
            message=f"The hit id {hit.id} was already recorded, so this {hit.type} was ignored. Each hit needs a new "
            "random id; only retries of the same hit may repeat it.",
            slug=hit.slug,
        )
    return HitOutcome("duplicate")


def _hit_in_one_statement(
    *, account: Account, hit: Hit, custom_event: CustomEvent | None, occurred_at: datetime, utm: dict
) -> HitOutcome | None:
    """The common hits in one statement each (tracking.sql, PostgreSQL): a hit that continues the visitor's open
    visit, or a new visitor's first hit; for an event, one without actions and with its metadata kept. None when the
    hit is neither: nothing was written, and the general path records it by the same rules."""
    if hit.type == "impression":
        row = _impression_new(
            account=account,
            visitor=None,
            session=None,
            url=hit.url,
            occurred_at=occurred_at,
            title=hit.title,
            referrer=hit.referrer,
            utm=utm,
            client_id=hit.id,
        )
    else:
        row = _event_record_new(
            account=account,
            custom_event=custom_event,
            contact=None,
            source=EventRecord.Source.BEACON,
            occurred_at=occurred_at,
            page_url=hit.url,
            metadata=hit.metadata,
            metadata_dropped_bytes=hit.metadata_dropped_bytes,
            idempotency_key=f"beacon:{hit.id}",
        )
        if row.metadata_dropped:
            return None  # the general path notes the drop in the event debugger
    campaign = {field: _clip(utm.get(field), UTM_MAX_LENGTH) for field in UTM_FIELDS}
    params = {
        **sql.hit_row_params(row),
        "account_id": account.pk,
        "uid": hit.visitor,
        "event_id": custom_event.pk if custom_event else None,
        "attribute": bool(getattr(row, "is_conversion", False)),
    }
    # A visit the hit continues: open at the hit's time, and the same campaign (or none).
    applied, row_id = sql.hit_statement(
        "open-visit",
        hit.type,
        {
            **params,
            "open_since": occurred_at - timedelta(minutes=account.session_timeout_minutes),
            "touch_before": occurred_at - SESSION_ACTIVITY_PRECISION,
            "has_campaign": any(campaign.values()),
            **{f"campaign_{field}": value for field, value in campaign.items()},
        },
    )
    if not applied:
        # A new visitor: its anonymous contact, the visitor and its first visit, then the hit.
        visitor = Visitor(account=account, uid=hit.visitor, last_seen_at=occurred_at)
        session = Session(
            account=account,
            started_at=occurred_at,
            last_seen_at=occurred_at,
            landing_url=_clip(hit.url, URL_MAX_LENGTH),
            referrer=_clip(hit.referrer, URL_MAX_LENGTH),
            channel=channel_derive(utm=utm, referrer=hit.referrer, page_url=hit.url, own_domains=account.domains),
            **campaign,
        )
        params |= sql.row_params(visitor, "visitor_", given=("contact_id", "current_session_id"))
        params |= sql.row_params(Contact(account=account), "contact_")
        params |= sql.row_params(session, "session_", given=("visitor_id",))
        applied, row_id = sql.hit_statement("new-visitor", hit.type, params)
    if not applied:
        return None
    if row_id is None:
        return _hit_duplicate(account=account, hit=hit)
    return HitOutcome("recorded")
