import math
import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from paminga.models import Account
from tracking.items import ApiEvent

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


def custom_event_delete(*, custom_event: CustomEvent):
    """Hides the event at once (every page and API, and capture, which then refuses its slug as unknown) and
    schedules the removal of what it owns (occurrences, action runs, actions, report rollups) in the background:
    this answers at once however many occurrences there are. Returns the BackgroundDelete."""
    from automations.deletes import background_delete_schedule

    account = custom_event.account
    with transaction.atomic():
        CustomEvent.objects.filter(pk=custom_event.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
        job = background_delete_schedule(
            kind="custom_event", account=account, target_id=custom_event.pk, label=str(custom_event)
        )
    _definitions_changed(account)
    return job


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


def marketing_source_delete(*, marketing_source: MarketingSource):
    """Hides the source at once; events already recorded from it keep the name as sent (marketing_source_name)
    and their channel, and are unlinked from it in the background before it is removed."""
    from automations.deletes import background_delete_schedule

    with transaction.atomic():
        MarketingSource.objects.filter(pk=marketing_source.pk, deleted_at__isnull=True).update(
            deleted_at=timezone.now()
        )
        return background_delete_schedule(
            kind="marketing_source",
            account=marketing_source.account,
            target_id=marketing_source.pk,
            label=marketing_source.name,
        )


# --- Firing a custom event through the API ---------------------------------------------------------------------

# Limits on what an API caller may send. URL and UTM limits are the columns' own; the rest keep one request small.
API_IDEMPOTENCY_KEY_MAX_LENGTH = 150
API_VISITOR_ID_MAX_LENGTH = 64
API_MARKETING_SOURCE_MAX_LENGTH = 200
# The beacon's visitor ids: random tokens (UUIDs, base64url). Anything else is a caller's mistake.
API_VISITOR_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]+$")
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
) -> ApiEvent:
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
    return ApiEvent(
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


def unknown_event_error(slug: str) -> ValidationError:
    """The refusal of an API event whose slug is none of the account's events (code unknown_event)."""
    try:
        validate_custom_event_slug(slug)
        hint = "Create it under Settings → Account → Custom Events, or check the spelling."
    except ValidationError as exc:
        hint = exc.messages[0]  # e.g. "Slugs must be lowercase.": why it can never match
    message = "No custom event with the slug “%(slug)s” in this account. %(hint)s"
    return _invalid("slug", message, "unknown_event", slug=slug, hint=hint)
