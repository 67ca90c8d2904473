"""Rate limits counted in the shared Django cache, so that every server process sees the same counts.

A limit is "COUNT/SECONDS": at most COUNT hits per window of SECONDS, windows aligned on the clock. A fixed window
is one atomic increment per check (Redis INCR behind Django's cache) and lets through at most twice COUNT across a
window boundary, which is precise enough to stop floods and guessing. When the cache is unreachable the limits let
everything through: refusing real traffic because a counter is down would be worse than a flood getting by.
"""

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int

    @classmethod
    def parse(cls, value: str) -> "Limit | None":
        """ "600/60" -> Limit(600, 60); "0" or "" -> None (no limit)."""
        value = (value or "").strip()
        if value in ("", "0"):
            return None
        count, _, seconds = value.partition("/")
        limit = cls(int(count), int(seconds or 60))
        return limit if limit.count > 0 and limit.seconds > 0 else None


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or behind PROXY_COUNT proxies the X-Forwarded-For entry the first proxy
    wrote (the ones left of it come from the client and can be anything)."""
    proxies = settings.PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies][:64]
    return request.META.get("REMOTE_ADDR", "")[:64]


def _key(scope: str, subject: str, limit: Limit, now: float) -> tuple[str, int]:
    window = int(now // limit.seconds)
    digest = hashlib.blake2b(subject.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
    retry_after = max(1, math.ceil((window + 1) * limit.seconds - now))
    return f"rl:{scope}:{digest}:{window}", retry_after


def rate_limit_hit(*, scope: str, subject: str, limit: Limit | None) -> int | None:
    """Counts one hit for `subject`; the seconds to wait (for Retry-After) when it is over the limit, else None."""
    if limit is None:
        return None
    key, retry_after = _key(scope, subject, limit, time.time())
    try:
        # add() then incr(): incr alone fails on a missing key, and add() sets the expiry once per window.
        cache.add(key, 0, timeout=limit.seconds + 1)
        count = cache.incr(key)
    except Exception:  # noqa: BLE001 - a cache outage lets traffic through (see the module docstring)
        logger.warning("Rate limit %s not checked: the cache is unavailable", scope, exc_info=True)
        return None
    return retry_after if count > limit.count else None


def rate_limit_reached(*, scope: str, subject: str, limit: Limit | None) -> int | None:
    """Like rate_limit_hit, without counting: the seconds to wait when `subject` is already over the limit."""
    if limit is None:
        return None
    key, retry_after = _key(scope, subject, limit, time.time())
    try:
        count = cache.get(key) or 0
    except Exception:  # noqa: BLE001 - see rate_limit_hit
        logger.warning("Rate limit %s not checked: the cache is unavailable", scope, exc_info=True)
        return None
    return retry_after if count >= limit.count else None


def limit_setting(name: str) -> Limit | None:
    return Limit.parse(getattr(settings, name))


def too_many_requests(message: str, retry_after: int) -> JsonResponse:
    """The API paths' answer over a limit: 429, Retry-After and {code, message}."""
    response = JsonResponse({"code": "RATE_LIMITED", "message": message}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def graphql_too_many_requests(message: str, retry_after: int) -> HttpResponse:
    """The same for /graphql/, in the API's error shape (a GraphQL error with extensions.code)."""
    body = {"errors": [{"message": message, "extensions": {"code": "RATE_LIMITED", "retry_after": retry_after}}]}
    response = HttpResponse(json.dumps(body), status=429, content_type="application/json")
    response["Retry-After"] = str(retry_after)
    return response
