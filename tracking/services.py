"""Writes for tracking. `event_record` is the one path every custom event takes, from the beacon and the API."""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from custom_events.models import CustomEvent, MarketingSource
from paminga.models import Account

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
    Session,
    Visitor,
)


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
    return (value or "")[:limit] if isinstance(value, str) else ""


def attributed_impression_for(*, session: Session | None, occurred_at: datetime) -> Impression | None:
    """The most recent impression in the session at the time of the event (none when it has none)."""
    if session is None:
        return None
    return (
        Impression.objects.filter(session=session, occurred_at__lte=occurred_at).order_by("-occurred_at", "-id").first()
    )


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
    idempotency_key: str | None = None,
) -> tuple[EventRecord, bool]:
    """Records one occurrence of a custom event and queues its actions. Returns (record, created).

    With an idempotency key already recorded for the account, returns the existing record and does nothing.
    Metadata over 4,096 bytes is dropped and flagged (callers that must refuse it check before calling).
    """
    if custom_event.account_id != account.pk or contact.account_id != account.pk:
        raise ValueError("event_record() across accounts")
    occurred_at = occurred_at or timezone.now()
    prepared = metadata_prepare(metadata)
    utm = utm or {}
    if marketing_source is not None and not marketing_channel:
        marketing_channel = marketing_source.channel
    is_conversion = custom_event.counts_as_conversion
    record = EventRecord(
        account=account,
        custom_event=custom_event,
        contact=contact,
        visitor=visitor,
        session=session,
        source=source,
        occurred_at=occurred_at,
        page_url=_clip(page_url, URL_MAX_LENGTH),
        marketing_channel=marketing_channel or "",
        marketing_source=marketing_source,
        marketing_source_name=_clip(marketing_source_name, 200),
        metadata=prepared.value,
        metadata_dropped=prepared.dropped,
        metadata_bytes=prepared.size,
        is_conversion=is_conversion,
        idempotency_key=idempotency_key or None,
        **{field: _clip(utm.get(field), UTM_MAX_LENGTH) for field in UTM_FIELDS},
    )
    from automations.services import action_runs_create

    with transaction.atomic():
        if is_conversion:
            record.attributed_impression = attributed_impression_for(session=session, occurred_at=occurred_at)
        try:
            with transaction.atomic():
                record.save()
        except IntegrityError:
            if idempotency_key:
                existing = EventRecord.objects.filter(account=account, idempotency_key=idempotency_key).first()
                if existing is not None:
                    return existing, False
            raise
        action_runs_create(event_record=record)
    return record, True


# --- Visitors, sessions and identification -------------------------------------------------------------------


def visitor_get_or_create(*, account: Account, uid: str, now: datetime) -> Visitor:
    """The account's visitor with this beacon id; a new one gets its own anonymous contact."""
    visitor = Visitor.objects.select_related("contact").filter(account=account, uid=uid).first()
    if visitor is not None:
        return visitor
    try:
        # One savepoint for both rows: losing the race to a concurrent first hit leaves no orphan contact.
        with transaction.atomic():
            contact = Contact.objects.create(account=account)
            return Visitor.objects.create(account=account, uid=uid, contact=contact, last_seen_at=now)
    except IntegrityError:
        return Visitor.objects.select_related("contact").get(account=account, uid=uid)


def _campaign(utm: dict) -> tuple:
    return tuple((utm.get(field) or "") for field in UTM_FIELDS)


def session_current(*, account: Account, visitor: Visitor, now: datetime) -> Session | None:
    """The visitor's visit still open at `now`: its last activity is within the account's inactivity timeout."""
    session = Session.objects.filter(visitor=visitor).order_by("-last_seen_at", "-id").first()
    if session is None or now - session.last_seen_at > timedelta(minutes=account.session_timeout_minutes):
        return None
    return session


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
    session = session_current(account=account, visitor=visitor, now=now)
    if session is not None and (not any(utm.values()) or _campaign(utm) == _campaign(session.utm)):
        if now > session.last_seen_at:
            Session.objects.filter(pk=session.pk, last_seen_at__lt=now).update(last_seen_at=now)
            session.last_seen_at = now
        return session
    return Session.objects.create(
        account=account,
        visitor=visitor,
        started_at=now,
        last_seen_at=now,
        landing_url=_clip(landing_url, URL_MAX_LENGTH),
        referrer=_clip(referrer, URL_MAX_LENGTH),
        channel=channel or "",
        **utm,
    )


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
