"""Checks a beacon hit passes before the collect view reads it: rate limits and the account's strict origin.

Each refusal is a JSON {code, message} the beacon understands: 429 (with Retry-After, which the beacon waits for
before it retries) or 403 (refused for good). Nothing is written for a refused hit: a flood must not turn into
database writes, so these refusals are not listed in the event debugger either.
"""

from django.http import JsonResponse

from paminga.models import Account
from paminga.ratelimit import client_address, limit_setting, rate_limit_hit, too_many_requests

from .cors import origin_allowed


def collect_guard(request, account: Account | None) -> JsonResponse | None:
    """None when the hit may be recorded; otherwise the answer to send. `account` is None for an unknown site key
    (the view answers 404 then), which still counts against the sender's address."""
    retry_after = rate_limit_hit(
        scope="collect-address", subject=client_address(request), limit=limit_setting("RATE_LIMIT_COLLECT_PER_ADDRESS")
    )
    if retry_after is not None:
        return too_many_requests(f"Too many hits from this address; retry in {retry_after} s.", retry_after)
    if account is None:
        return None
    retry_after = rate_limit_hit(
        scope="collect-site", subject=account.site_key, limit=limit_setting("RATE_LIMIT_COLLECT_PER_SITE_KEY")
    )
    if retry_after is not None:
        return too_many_requests(f"Too many hits for this site key; retry in {retry_after} s.", retry_after)
    if account.strict_origin and not _origin_or_referer_allowed(request, account):
        return JsonResponse(
            {
                "code": "ORIGIN_REQUIRED",
                "message": "This account accepts hits only from pages on its domains (strict origin), and this one "
                "came with neither an Origin nor a Referer on them.",
            },
            status=403,
        )
    return None


def _origin_or_referer_allowed(request, account: Account) -> bool:
    origin = request.headers.get("Origin")
    if origin:
        # The view checks the Origin itself (and lists a foreign one in the event debugger).
        return True
    referer = request.headers.get("Referer", "")[:2000]
    return bool(referer) and bool(account.domains) and origin_allowed(account=account, origin=referer)
