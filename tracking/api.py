"""The GraphQL API's events, checked before capture: each input of `triggerCustomEvent(s)` validated into an ApiEvent
(every field against its own rule, before anything is looked up or written), and the refusal of an unknown slug."""

import math
import re

from django.core.exceptions import ValidationError

from custom_events.models import SLUG_MAX_LENGTH, MarketingChannel, validate_custom_event_slug

from .items import ApiEvent
from .models import METADATA_MAX_BYTES, URL_MAX_LENGTH, UTM_MAX_LENGTH
from .services import email_normalize, metadata_size

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


def api_event_clean(
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
