"""The collect endpoint's envelope: one beacon hit as JSON, validated into a `Hit`.

A hit is a JSON object (sent as text/plain, so browsers need no CORS preflight):

    {"type": "impression" | "event" | "identify",
     "id": "<random hit id, 8-64 of [A-Za-z0-9_-]>",        # recorded at most once per account
     "visitor": "<first-party visitor id, same alphabet>",
     "age": <ms since the hit was created, on the sender's clock>,        # optional
     "retry": true,                                                     # optional: sent before, maybe recorded
     "automated": true,                                                 # optional: navigator.webdriver (a bot)
     "url": "<page URL>", "title": "...", "referrer": "...",            # the page (url required for impressions)
     "contact_token": "<signed token from a tracked link>",             # optional, impressions
     "slug": "...", "metadata": {...}, "metadata_dropped": <bytes>,     # events
     "email": "..."}                                                    # identify

Strings are truncated to the stored lengths rather than refused: a long title must not cost the hit.
"""

import json
import re
from dataclasses import dataclass
from datetime import timedelta

from .models import URL_MAX_LENGTH, RejectedHit

BODY_MAX_BYTES = 32 * 1024
# A hit older than this is refused: the beacon stops retrying after a day, so an older one is not ours.
HIT_MAX_AGE = timedelta(hours=24)
HIT_TYPES = ("impression", "event", "identify")
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
TITLE_MAX_LENGTH = 500
# The largest size of dropped metadata a hit may report: more than any browser serializes, less than the column holds.
METADATA_DROPPED_MAX = 2**31 - 1

Reason = RejectedHit.Reason


class HitError(Exception):
    """A refused hit: its code (a RejectedHit reason), an HTTP status and a message for the developer."""

    def __init__(self, code: str, message: str, status: int = 400, slug: str = ""):
        super().__init__(message)
        self.code, self.message, self.status, self.slug = code, message, status, slug


@dataclass
class Hit:
    type: str
    id: str
    visitor: str
    age_ms: int = 0
    retry: bool = False
    automated: bool = False
    url: str = ""
    title: str = ""
    referrer: str = ""
    contact_token: str = ""
    slug: str = ""
    metadata: dict | None = None
    metadata_dropped_bytes: int | None = None
    email: str = ""


def _text(data: dict, key: str, limit: int) -> str:
    value = data.get(key)
    return value[:limit] if isinstance(value, str) else ""


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _json_kind(value) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _not_json_number(value: str):
    raise ValueError(f"{value} is not a JSON number")


def _finite(value: str) -> float:
    number = float(value)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"{value} is too large")
    return number


def _storable(value):
    """The value with every string storable in PostgreSQL: NUL characters removed, lone surrogates (invalid UTF-16
    that JSON escapes can carry) replaced."""
    if isinstance(value, str):
        value = value.replace("\x00", "")
        try:
            value.encode()
        except UnicodeEncodeError:
            value = value.encode(errors="replace").decode()
        return value
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


def hit_parse(raw: bytes) -> Hit:
    if len(raw) > BODY_MAX_BYTES:
        raise HitError(Reason.TOO_LARGE, f"The request body is over {BODY_MAX_BYTES:,} bytes.", status=413)
    try:
        # NaN, Infinity and overflowing numbers are not JSON, and a database cannot store them.
        data = json.loads(raw, parse_constant=_not_json_number, parse_float=_finite)
        # Escapes can carry NUL characters or lone surrogates, and so can the raw UTF-8 bytes of a surrogate (0xED
        # 0xA0-0xBF), which json decodes with "surrogatepass".
        if b"\\u" in raw or b"\xed" in raw:
            data = _storable(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise HitError(Reason.MALFORMED, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise HitError(Reason.MALFORMED, "The request body must be a JSON object.")
    kind = data.get("type")
    if kind not in HIT_TYPES:
        raise HitError(Reason.MALFORMED, "“type” must be one of impression, event, identify.")
    for key in ("id", "visitor"):
        if not isinstance(data.get(key), str) or not ID_PATTERN.match(data[key]):
            raise HitError(Reason.MALFORMED, f"“{key}” must be 8 to 64 letters, digits, hyphens or underscores.")
    age = data.get("age", 0)
    if _int(age) is None:
        raise HitError(Reason.MALFORMED, "“age” must be a whole number of milliseconds, 0 or more.")
    if age > HIT_MAX_AGE.total_seconds() * 1000:
        raise HitError(Reason.INVALID, "The hit is more than 24 hours old.", status=422)
    hit = Hit(
        type=kind,
        id=data["id"],
        visitor=data["visitor"],
        age_ms=age,
        retry=data.get("retry") is True,
        automated=data.get("automated") is True,
        url=_text(data, "url", URL_MAX_LENGTH),
        title=_text(data, "title", TITLE_MAX_LENGTH),
        referrer=_text(data, "referrer", URL_MAX_LENGTH),
    )
    if kind == "impression":
        if not hit.url.startswith(("http://", "https://")):
            raise HitError(Reason.MALFORMED, "An impression needs the page “url” (http or https).")
        hit.contact_token = _text(data, "contact_token", 200)
    elif kind == "event":
        slug = data.get("slug")
        if not isinstance(slug, str) or not slug:
            raise HitError(Reason.MALFORMED, "An event needs its “slug”, a string.")
        hit.slug = slug[:200]
        metadata = data.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise HitError(
                Reason.INVALID_METADATA,
                f"Metadata must be a plain JSON object, not {_json_kind(metadata)}.",
                status=422,
                slug=hit.slug,
            )
        hit.metadata = metadata
        if "metadata_dropped" in data:
            hit.metadata_dropped_bytes = _int(data["metadata_dropped"])
            if hit.metadata_dropped_bytes is None or hit.metadata_dropped_bytes > METADATA_DROPPED_MAX:
                raise HitError(Reason.MALFORMED, "“metadata_dropped” must be a number of bytes.", slug=hit.slug)
    else:
        if not isinstance(data.get("email"), str):
            raise HitError(Reason.INVALID_EMAIL, "identify() needs an email address, a string.", status=422)
        hit.email = data["email"][:300]
    return hit
