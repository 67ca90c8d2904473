"""Writes for tracking that are not ingestion: contacts and identification, the metadata rule, the event debugger.

Beacon hits and API events are recorded by tracking.ingest, the one writer of visits, impressions and events; it calls
the functions here for the rules they hold.
"""

import json
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from custom_events.models import validate_custom_event_slug
from paminga.models import Account

from . import hooks
from .models import (
    METADATA_MAX_BYTES,
    Contact,
    ContactListMembership,
    ContactTag,
    EventRecord,
    RejectedHit,
    Visitor,
)

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


def metadata_prepare(metadata, *, dropped_bytes: int | None = None) -> Metadata:
    """Metadata to store: kept when at most 4,096 bytes, dropped (and flagged) when larger. `dropped_bytes` says the
    sender already dropped metadata of that size (the beacon measures it in the browser, so an oversized object is
    never sent)."""
    if dropped_bytes is not None:
        return Metadata(value=None, size=dropped_bytes, dropped=True)
    if metadata is None or metadata == {}:
        return Metadata(value=None if metadata is None else {}, size=0 if metadata is None else 2, dropped=False)
    if not isinstance(metadata, dict):
        raise ValidationError("Metadata must be a JSON object.", code="invalid_metadata")
    size = metadata_size(metadata)
    if size > METADATA_MAX_BYTES:
        return Metadata(value=None, size=size, dropped=True)
    return Metadata(value=metadata, size=size, dropped=False)


def clip(value, limit: int) -> str:
    """A string cut to its column's length, without NUL characters (PostgreSQL text cannot store them)."""
    return (value or "").replace("\x00", "")[:limit] if isinstance(value, str) else ""


# --- Visitors, sessions and identification -------------------------------------------------------------------


def contact_merge(*, source: Contact, target: Contact) -> Contact:
    """Moves everything of `source` (an anonymous contact) into `target` and deletes `source`, in one transaction:
    its visitors (and so their sessions and impressions), events, tags, lists, score and fields."""
    if source.pk == target.pk or source.account_id != target.account_id:
        raise ValueError("contact_merge() needs two contacts of one account")
    with transaction.atomic():
        # The report rollups hold the source among the unique contacts of its days: they mark those days.
        hooks.contact_merging(contact=source)
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
        hooks.contact_identified(contact=target)
    return target


# --- Impressions, the event debugger and beacon hits ---------------------------------------------------------


# Debugger budget counts kept in this process while the shared cache cannot be reached.
_local_window_counts: dict[str, int] = {}


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
    try:
        new_window = cache.add(key, 0, 120)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add() and incr()
            count = 1
    except Exception:  # noqa: BLE001 - the shared cache is down: count in this process rather than fail the hit
        if len(_local_window_counts) > 1000:
            _local_window_counts.clear()
        count = _local_window_counts[key] = _local_window_counts.get(key, 0) + 1
        new_window = count == 1
    if count > per_minute:
        return None
    entry = RejectedHit.objects.create(
        account=account,
        reason=reason,
        message=clip(message, 500),
        slug=clip(slug, 200),
        excerpt=clip(excerpt, 500),
        recorded=recorded,
    )
    if new_window:
        cutoff = RejectedHit.objects.filter(account=account).order_by("-id").values_list("id", flat=True)[keep:][:1]
        if cutoff:
            RejectedHit.objects.filter(account=account, id__lte=cutoff[0]).delete()
    return entry


def unknown_event_message(slug: str) -> str:
    message = f"No custom event “{slug}” in this account: it was never created, or it has been deleted."
    try:
        validate_custom_event_slug(slug)
    except ValidationError as exc:
        message += " " + " ".join(exc.messages)
    return message + " Check the slug under Settings → Account → Custom Events."
