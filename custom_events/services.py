import math
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from paminga.models import Account

from .models import SLUG_MAX_LENGTH, CustomEvent, MarketingChannel, MarketingSource, validate_custom_event_slug
from .selectors import custom_event_slug_taken

DUPLICATE_SLUG_MESSAGE = "This slug is already used by another custom event in this account."


def _save_checked(event: CustomEvent) -> CustomEvent:
    errors: dict = {}
    try:
        event.full_clean(validate_constraints=False)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    # The unique constraint spans (account, slug); reported on the slug, where the user can fix it.
    if "slug" not in errors and custom_event_slug_taken(account=event.account, slug=event.slug, exclude_pk=event.pk):
        errors["slug"] = [ValidationError(DUPLICATE_SLUG_MESSAGE, code="unique")]
    if errors:
        raise ValidationError(errors)
    try:
        # A savepoint so that losing a race to a concurrent insert leaves the caller's transaction usable.
        with transaction.atomic():
            event.save()
    except IntegrityError as exc:
        # Two requests can both pass full_clean(); the unique constraint decides, and the loser gets the
        # same message the form would have shown.
        if custom_event_slug_taken(account=event.account, slug=event.slug, exclude_pk=event.pk):
            raise ValidationError({"slug": ValidationError(DUPLICATE_SLUG_MESSAGE, code="unique")}) from exc
        raise
    _definitions_changed(event.account)
    return event


def _definitions_changed(account: Account) -> None:
    from tracking.cache import custom_events_cache_clear  # the hot paths cache definitions per account

    custom_events_cache_clear(account=account)


def custom_event_create(
    *, account: Account, name: str, slug: str, description: str = "", counts_as_conversion: bool = False
) -> CustomEvent:
    event = CustomEvent(
        account=account,
        name=(name or "").strip(),
        slug=(slug or "").strip(),
        description=(description or "").strip(),
        counts_as_conversion=bool(counts_as_conversion),
    )
    return _save_checked(event)


def custom_event_update(*, custom_event: CustomEvent, **fields) -> CustomEvent:
    allowed = {"name", "slug", "description", "counts_as_conversion"}
    for key, value in fields.items():
        if key not in allowed:
            raise TypeError(f"custom_event_update() got an unexpected field {key!r}")
        if isinstance(value, str):
            value = value.strip()
        setattr(custom_event, key, value)
    return _save_checked(custom_event)


def custom_event_delete(*, custom_event: CustomEvent) -> None:
    account = custom_event.account
    with transaction.atomic():
        custom_event.delete()
    _definitions_changed(account)


DUPLICATE_SOURCE_MESSAGE = "A marketing source with this name already exists."


def _source_save_checked(source: MarketingSource) -> MarketingSource:
    # full_clean() checks the case-insensitive unique name; the constraint decides a race between two requests.
    source.full_clean()
    try:
        with transaction.atomic():
            source.save()
    except IntegrityError as exc:
        raise ValidationError({"name": ValidationError(DUPLICATE_SOURCE_MESSAGE, code="unique")}) from exc
    return source


def marketing_source_create(*, account: Account, name: str, channel: str) -> MarketingSource:
    source = MarketingSource(account=account, name=(name or "").strip(), channel=channel)
    return _source_save_checked(source)


def marketing_source_update(*, marketing_source: MarketingSource, name: str, channel: str) -> MarketingSource:
    marketing_source.name = (name or "").strip()
    marketing_source.channel = channel
    return _source_save_checked(marketing_source)


def marketing_source_delete(*, marketing_source: MarketingSource) -> None:
    """Events already recorded from this source keep the name as sent (marketing_source_name) and their channel."""
    marketing_source.delete()


# --- Firing a custom event through the API ---------------------------------------------------------------------

# Limits on what an API caller may send. URL and UTM limits are the columns' own; the rest keep one request small.
API_IDEMPOTENCY_KEY_MAX_LENGTH = 150
API_VISITOR_ID_MAX_LENGTH = 64
API_MARKETING_SOURCE_MAX_LENGTH = 200
# The beacon's visitor ids: random tokens (UUIDs, base64url). Anything else is a caller's mistake.
API_VISITOR_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]+$")
# Stored idempotency keys are namespaced by source, so an API key can never collide with a beacon hit id.
API_IDEMPOTENCY_NAMESPACE = "api:"
# MarketingChannel.values builds a new list on every use.
_MARKETING_CHANNELS = frozenset(MarketingChannel.values)


def _invalid(field: str, message: str, code: str = "invalid", **params) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code, params=params or None)})


def _text(field: str, value, max_length: int) -> str:
    """A stripped string input: refuses what no column can store (null characters, unpaired surrogates) and
    what is over its limit, with a message naming the field."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(field, f"{field} must be a string.")
    value = value.strip()
    if len(value) > max_length:
        raise _invalid(field, f"{field} can be at most {max_length} characters (it has {len(value)}).", "max_length")
    if "\x00" in value:
        raise _invalid(field, f"{field} cannot contain null characters.", "null_characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(field, f"{field} is not valid Unicode text.", "invalid_unicode") from None
    return value


def _metadata_check(value, depth: int = 0) -> None:
    """Values JSON columns can store: finite numbers, strings without null characters (PostgreSQL's jsonb refuses
    \\u0000), at a sane depth. The 4,096-byte limit bounds the size; this bounds the shape."""
    if depth > 32:
        raise _invalid("metadata", "metadata is nested too deeply (at most 32 levels).")
    if isinstance(value, dict):
        for key, item in value.items():
            _metadata_check(key, depth + 1)
            _metadata_check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _metadata_check(item, depth + 1)
    elif isinstance(value, str):
        if "\x00" in value:
            raise _invalid("metadata", "metadata cannot contain null characters.", "null_characters")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid("metadata", "metadata numbers must be finite (no NaN or Infinity).")
    elif value is not None and not isinstance(value, bool | int):
        raise _invalid("metadata", "metadata must hold JSON values only.")


def _metadata_clean(metadata):
    from tracking.models import METADATA_MAX_BYTES
    from tracking.services import metadata_size

    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise _invalid("metadata", "metadata must be a JSON object of key/value pairs.", "invalid_metadata")
    _metadata_check(metadata)
    try:
        size = metadata_size(metadata)
    except UnicodeEncodeError:
        raise _invalid("metadata", "metadata is not valid Unicode text.", "invalid_unicode") from None
    if size > METADATA_MAX_BYTES:
        # Unlike the beacon (which drops it and records the event), the API refuses: the caller can fix and retry.
        raise _invalid(
            "metadata",
            f"metadata is {size} bytes once serialized as JSON; the limit is {METADATA_MAX_BYTES} bytes.",
            "metadata_too_large",
        )
    return metadata


@dataclass(frozen=True)
class TriggerRequest:
    """One API request to fire a custom event, its envelope validated (see `custom_event_trigger_clean`)."""

    slug: str
    email: str
    page_url: str
    utm: dict
    marketing_channel: str
    marketing_source: str
    metadata: dict | None
    idempotency_key: str | None
    visitor_id: str | None


def custom_event_trigger_clean(
    *,
    slug,
    email,
    page_url=None,
    utm_source=None,
    utm_medium=None,
    utm_campaign=None,
    utm_term=None,
    utm_content=None,
    marketing_channel=None,
    marketing_source=None,
    metadata=None,
    idempotency_key=None,
    visitor_id=None,
) -> TriggerRequest:
    """Validates an API request's fields, each against its own rule, before anything is looked up or written.
    Raises ValidationError keyed by the input field (codes: invalid_email, metadata_too_large, ...)."""
    from tracking.models import URL_MAX_LENGTH, UTM_MAX_LENGTH
    from tracking.services import email_normalize

    slug = _text("slug", slug, SLUG_MAX_LENGTH)
    if not slug:
        raise _invalid("slug", "slug is required: the slug of the custom event to fire.", "required")
    try:
        email = _text("email", email, 254)
        if not email:
            raise _invalid("email", "email is required: the contact's email address.")
        email = email_normalize(email)
    except ValidationError as exc:
        # Whatever is wrong with it (empty, too long, malformed), it is not a usable email address.
        raise _invalid("email", exc.messages[0], "invalid_email") from None
    utm = {
        "utm_source": _text("utm_source", utm_source, UTM_MAX_LENGTH),
        "utm_medium": _text("utm_medium", utm_medium, UTM_MAX_LENGTH),
        "utm_campaign": _text("utm_campaign", utm_campaign, UTM_MAX_LENGTH),
        "utm_term": _text("utm_term", utm_term, UTM_MAX_LENGTH),
        "utm_content": _text("utm_content", utm_content, UTM_MAX_LENGTH),
    }
    marketing_channel = getattr(marketing_channel, "value", marketing_channel) or ""
    if marketing_channel and marketing_channel not in _MARKETING_CHANNELS:
        raise _invalid("marketing_channel", "marketing_channel is not one of the MarketingChannel values.")
    if idempotency_key is not None:
        idempotency_key = _text("idempotency_key", idempotency_key, API_IDEMPOTENCY_KEY_MAX_LENGTH)
        if not idempotency_key:
            raise _invalid("idempotency_key", "idempotency_key cannot be empty (omit it instead).")
    if visitor_id is not None:
        visitor_id = _text("visitor_id", visitor_id, API_VISITOR_ID_MAX_LENGTH)
        if not visitor_id or not API_VISITOR_ID_PATTERN.match(visitor_id):
            raise _invalid(
                "visitor_id", "visitor_id must be the beacon's visitor id: letters, digits, '.', '_', ':' or '-'."
            )
    return TriggerRequest(
        slug=slug,
        email=email,
        page_url=_text("page_url", page_url, URL_MAX_LENGTH),
        utm=utm,
        marketing_channel=marketing_channel,
        marketing_source=_text("marketing_source", marketing_source, API_MARKETING_SOURCE_MAX_LENGTH),
        metadata=_metadata_clean(metadata),
        idempotency_key=idempotency_key or None,
        visitor_id=visitor_id or None,
    )


def custom_event_trigger(*, account: Account, request: TriggerRequest):
    """Fires a custom event for the contact with this email (created if there is none), in one transaction, with
    `source = api`. Returns (EventRecord, created): with an idempotency key already used for this event and contact,
    the earlier record and False. Raises ValidationError (code unknown_event, idempotency_key_reused) and records
    nothing when the event cannot be fired.

    Without a visitor id no impression is attributed (there is no browser session). With one, the visitor is
    identified as the contact and the event is attributed like a beacon hit of that visitor's current session.
    An unknown marketing source name is kept as given (`marketing_source_name`) with no matched source.
    """
    if (
        settings.API_ONE_STATEMENT_TRIGGERS
        and connection.vendor == "postgresql"
        and not request.visitor_id
        and not request.idempotency_key
    ):
        result = _trigger_in_one_statement(account, request)
        if result is not None:
            return result
    (result,) = custom_event_trigger_many(account=account, requests=[request], bulk=False)
    if isinstance(result, ValidationError):
        raise result
    return result


def _trigger_in_one_statement(account: Account, request: TriggerRequest):
    """The common call in one prepared statement (custom_events.sql, PostgreSQL): an event without actions, for a
    contact found or created by email, with no visitor id and no idempotency key. None when it does not apply:
    nothing was written, and the general path records it (or refuses it) by the same rules."""
    from django.utils import timezone

    from tracking.cache import custom_event_get_cached, custom_events_cache_clear
    from tracking.models import EventRecord
    from tracking.services import _event_record_values

    from . import sql

    custom_event = custom_event_get_cached(account=account, slug=request.slug)
    if custom_event is None:
        return None  # the general path says why (UNKNOWN_EVENT)
    now = timezone.now()
    # Column values rather than model instances: building them cost about as much as sending the statement.
    values = _event_record_values(
        custom_event=custom_event,
        source=EventRecord.Source.API,
        occurred_at=now,
        page_url=request.page_url,
        utm=request.utm,
        marketing_channel=request.marketing_channel,
        marketing_source_name=request.marketing_source,
        metadata=request.metadata,
    )
    values["account_id"], values["custom_event_id"] = account.pk, custom_event.pk
    params = sql.trigger_params(
        event_values=values,
        contact_values={"account_id": account.pk, "email": request.email, "identified_at": now},
        match_source=bool(request.marketing_source),
    )
    try:
        written = sql.trigger_statement(params)
    except IntegrityError:
        # The definition was deleted while a cached copy of it was used (its foreign key fails at commit).
        custom_events_cache_clear(account=account)
        return None
    if written is None:
        return None
    values["id"], values["contact_id"], values["marketing_source_id"], values["marketing_channel"] = written
    return _event_record_from_values(values), True


def _event_record_from_values(values: dict):
    """The saved EventRecord of these column values (by attname), built as the ORM builds a row it read: positional
    values, much cheaper than keyword arguments."""
    from tracking.models import EventRecord

    return EventRecord.from_db(
        connection.alias, None, [values.get(f.attname) for f in EventRecord._meta.concrete_fields]
    )


def custom_event_trigger_many(*, account: Account, requests: list, bulk: bool = True):
    """Fires several events in one transaction, each as `custom_event_trigger` would. Returns one result per request,
    in order: (EventRecord, created), or the ValidationError that refused it (a refused request writes nothing and
    does not stop the others). A request already refused by `custom_event_trigger_clean` may be passed as its
    ValidationError; it stays in its place.

    Everything that can refuse a request is checked before anything is written for it, so a refusal needs no
    savepoint; an unexpected error while writing rolls the whole transaction back.

    With `bulk` (the default), the requests without visitor_id and idempotency_key are written together: their
    contacts found with one query and the missing ones created with one insert, their events inserted with one
    statement and their actions' runs with another. The others go one by one, first, through the same path as
    `bulk=False`, which writes the same rows (a test compares them) and stays the reference.
    """
    from tracking.cache import custom_events_cache_clear

    from .selectors import contact_map_by_email, custom_event_get

    triggers = [r for r in requests if isinstance(r, TriggerRequest)]
    for attempt in (1, 2):
        try:
            if bulk:
                with transaction.atomic():
                    return _trigger_bulk(account, requests)
            # One query for the contacts of the whole batch (requests with a visitor id identify it instead).
            contacts = contact_map_by_email(account=account, emails={r.email for r in triggers if not r.visitor_id})
            with transaction.atomic():
                return [_trigger_one(account, request, contacts) for request in requests]
        except IntegrityError:
            # A definition was deleted while a cached copy of it was used (its foreign key fails, at the latest on
            # commit): forget the cached copies and try once more, so the callers get the answer they would have
            # got a moment later (UNKNOWN_EVENT).
            custom_events_cache_clear(account=account)
            if attempt == 2 or all(custom_event_get(account=account, slug=r.slug) for r in triggers):
                raise
    raise AssertionError("unreachable")


def _trigger_bulk(account: Account, requests: list) -> list:
    from django.utils import timezone

    from automations.services import action_runs_create_many
    from tracking.models import EventRecord

    from .selectors import marketing_source_match

    results: list = [None] * len(requests)
    together: list[tuple[int, TriggerRequest, CustomEvent]] = []
    one_by_one: list[int] = []
    for index, request in enumerate(requests):
        if isinstance(request, ValidationError):
            results[index] = request
        elif request.visitor_id or request.idempotency_key:
            one_by_one.append(index)
        else:
            try:
                custom_event, _ = _trigger_check(account, request)
            except ValidationError as exc:
                results[index] = exc
            else:
                together.append((index, request, custom_event))
    # First the requests that identify a visitor or carry a key, as the reference path writes them: the contacts
    # they create or rename are then found by the others.
    contacts: dict = {}
    for index in one_by_one:
        results[index] = _trigger_one(account, requests[index], contacts)
    if not together:
        return results
    contacts = _contacts_get_or_create(account=account, emails={request.email for _, request, _ in together})
    # Each marketing source name is matched once per batch.
    sources: dict[str, MarketingSource | None] = {}
    for _, request, _ in together:
        if request.marketing_source and request.marketing_source not in sources:
            sources[request.marketing_source] = marketing_source_match(account=account, name=request.marketing_source)
    now = timezone.now()
    records = _event_records_insert(
        [
            (
                custom_event,
                contacts[request.email],
                sources.get(request.marketing_source),
                {
                    "source": EventRecord.Source.API,
                    "occurred_at": now,
                    "page_url": request.page_url,
                    "utm": request.utm,
                    "marketing_channel": request.marketing_channel,
                    "marketing_source_name": request.marketing_source,
                    "metadata": request.metadata,
                },
            )
            for _, request, custom_event in together
        ]
    )
    action_runs_create_many(event_records=records)
    for (index, _, _), record in zip(together, records, strict=True):
        results[index] = (record, True)
    return results


def _event_records_insert(events: list[tuple]) -> list:
    """Inserts the event records of a batch, each given as (custom_event, contact, marketing_source or None, its own
    values for tracking.services._event_record_values), and returns them saved, in order. On PostgreSQL their column
    values go to tracking.sql.insert_rows() (one statement, no model instance to prepare per row); elsewhere through
    QuerySet.bulk_create(), which builds the same rows from instances."""
    from tracking.models import EventRecord
    from tracking.services import _event_record_new, _event_record_values
    from tracking.sql import insert_rows

    if connection.vendor != "postgresql":
        records = [
            _event_record_new(
                account=event.account, custom_event=event, contact=contact, marketing_source=source, **own
            )
            for event, contact, source, own in events
        ]
        return EventRecord.objects.bulk_create(records)
    rows = []
    for event, contact, source, own in events:
        values = _event_record_values(custom_event=event, marketing_source=source, **own)
        values["account_id"], values["custom_event_id"], values["contact_id"] = event.account_id, event.pk, contact.pk
        values["marketing_source_id"] = source.pk if source is not None else None
        rows.append(values)
    records = []
    for row, record_id, (_, contact, _, _) in zip(rows, insert_rows(EventRecord, rows), events, strict=True):
        row["id"] = record_id
        record = _event_record_from_values(row)
        record.contact = contact  # the runs of its actions read it (is the contact anonymous?)
        records.append(record)
    return records


def _contacts_get_or_create(*, account: Account, emails: set[str]) -> dict:
    """{email: Contact} for these (normalized) emails, the missing ones created: one query to find them, and one
    insert plus one query for those that are new. Created in the order of their emails, so that two batches creating
    some of the same contacts at the same time take their locks in the same order and cannot deadlock; a contact a
    concurrent request created first is found rather than created again."""
    from django.utils import timezone

    from tracking.models import Contact

    from .selectors import contact_map_by_email

    contacts = contact_map_by_email(account=account, emails=emails)
    missing = sorted(emails - contacts.keys())
    if missing:
        now = timezone.now()
        Contact.objects.bulk_create(
            [Contact(account=account, email=email, identified_at=now) for email in missing], ignore_conflicts=True
        )
        contacts |= contact_map_by_email(account=account, emails=set(missing))
    return contacts


def _trigger_one(account: Account, request, contacts: dict):
    if isinstance(request, ValidationError):
        return request
    try:
        custom_event, replay = _trigger_check(account, request)
    except ValidationError as exc:
        return exc
    if replay is not None:
        return replay, False
    return _trigger_write(account, request, custom_event, contacts)


def _trigger_check(account: Account, request: TriggerRequest):
    """The reads that can refuse a request: the event must exist; an idempotency key must name the same event and
    contact as before. Returns (custom_event, the earlier record for this key or None)."""
    from tracking.cache import custom_event_get_cached

    custom_event = custom_event_get_cached(account=account, slug=request.slug)
    if custom_event is None:
        raise _unknown_event(request.slug)
    replay = None
    if request.idempotency_key:
        replay = _idempotent_replay(
            account=account,
            stored_key=API_IDEMPOTENCY_NAMESPACE + request.idempotency_key,
            custom_event=custom_event,
            email=request.email,
        )
    return custom_event, replay


def _trigger_write(account: Account, request: TriggerRequest, custom_event: CustomEvent, contacts: dict):
    from django.utils import timezone

    from tracking.models import EventRecord
    from tracking.services import (
        contact_get_or_create,
        contact_identify,
        event_record,
        session_current,
        visitor_get_or_create,
    )

    from .selectors import marketing_source_match

    now = timezone.now()
    visitor = session = None
    if request.visitor_id:
        visitor = visitor_get_or_create(account=account, uid=request.visitor_id, now=now)
        contact = contact_identify(account=account, visitor=visitor, email=request.email)
        session = session_current(account=account, visitor=visitor, now=now)
    else:
        contact = contacts.get(request.email)
        if contact is None:
            contact, _ = contact_get_or_create(account=account, email=request.email)
            contacts[request.email] = contact
    matched_source = (
        marketing_source_match(account=account, name=request.marketing_source) if request.marketing_source else None
    )
    return event_record(
        account=account,
        custom_event=custom_event,
        contact=contact,
        source=EventRecord.Source.API,
        occurred_at=now,
        visitor=visitor,
        session=session,
        page_url=request.page_url,
        utm=request.utm,
        marketing_channel=request.marketing_channel,
        marketing_source=matched_source,
        marketing_source_name=request.marketing_source,
        metadata=request.metadata,
        idempotency_key=API_IDEMPOTENCY_NAMESPACE + request.idempotency_key if request.idempotency_key else None,
    )


def _unknown_event(slug: str) -> ValidationError:
    try:
        validate_custom_event_slug(slug)
        hint = "Create it under Settings → Account → Custom Events, or check the spelling."
    except ValidationError as exc:
        hint = exc.messages[0]  # e.g. "Slugs must be lowercase.": why it can never match
    message = "No custom event with the slug “%(slug)s” in this account. %(hint)s"
    return _invalid("slug", message, "unknown_event", slug=slug, hint=hint)


def _idempotent_replay(*, account: Account, stored_key: str, custom_event: CustomEvent, email: str):
    """The record an earlier request with this key made, if any. The key must name the same event and contact:
    a key reused for something else is the caller's bug, and answering "done" would lose that event silently."""
    from tracking.models import EventRecord

    existing = EventRecord.objects.select_related("contact").filter(account=account, idempotency_key=stored_key).first()
    if existing is None:
        return None
    if existing.custom_event_id != custom_event.pk or (existing.contact.email or "") != email:
        raise _invalid(
            "idempotency_key",
            "This idempotency_key was already used for another event or contact: use a new key for a new event.",
            "idempotency_key_reused",
        )
    return existing
