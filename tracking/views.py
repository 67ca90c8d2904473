import hashlib
import logging
import os.path

from csp.decorators import csp_exempt
from django.conf import settings
from django.db import DatabaseError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_GET

from paminga.accounts import account_required
from paminga.cache import account_get_by_site_key
from paminga.models import Account

from . import guards, selectors, services
from .capture import Unavailable, capture, hit_check, hit_from_bot
from .cors import origin_allowed
from .hits import BODY_MAX_BYTES, HitError, hit_parse
from .items import HitItem
from .links import CONTACT_PARAM
from .models import RejectedHit
from .privacy import hit_refused_for_privacy, untracked_hit_totals

logger = logging.getLogger(__name__)
Reason = RejectedHit.Reason

# Browsers re-check the beacon hourly and may use a stale copy for a day while they do: a new version reaches every
# visitor within about an hour, and a slow answer from us never delays the customer's page.
BEACON_CACHE_SECONDS = 3600
DEMO_PAGES = ("home", "pricing", "resources")


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"code": code, "message": message}, status=status)


@require_GET
@gzip_page
@csp_exempt()  # a script, not a page: no policy applies to it, and building one costs every load
def beacon(request, site_key: str, first_party: bool = False):
    """The tracking script for one account, rendered from tracking/beacon.js (a Django template).

    The script needs nothing of the account but its site key, so when the database cannot be reached to check the key
    the script is served anyway, briefly cached: a page load must not lose its hits because a backing service is
    down (collect checks the key again when the hits arrive).

    `first_party`: served at /p/<site key>.js, usually through a path of the customer's own domain. The script then
    posts to /p/<site key>/e next to itself, and its text leaves out the header comment and every word block lists
    look for (docs/tracking.md, "First-party path")."""
    checked = True
    try:
        account = account_get_by_site_key(site_key=site_key)
    except DatabaseError:
        account, checked = None, False
    if checked and account is None:
        response = HttpResponse(
            "/* Paminga: unknown site key. Copy the install snippet from Settings → Account. */\n",
            content_type="text/javascript; charset=utf-8",
            status=404,
        )
        patch_cache_control(response, no_cache=True)
        return response
    script_path, collect_path = _paths(site_key, first_party=first_party)
    body = render_to_string(
        "tracking/beacon.js",
        {
            "site_key": site_key,
            "first_party": first_party,
            # Where the script posts, relative to its own address: right behind a proxy that serves it under a path
            # prefix (https://www.example.com/pm/p/<key>.js posts to https://www.example.com/pm/p/<key>/e).
            "collect_relative": os.path.relpath(collect_path, os.path.dirname(script_path)),
            "script_path": script_path,
            # Only where the script's own address is unknown (no document.currentScript), and never in first-party
            # mode, whose text names no host of ours.
            "collect_url": "" if first_party else request.build_absolute_uri(collect_path),
            "contact_param": CONTACT_PARAM,
            "metadata_max_bytes": services.METADATA_MAX_BYTES,
            # Unchecked (the database is down), the script asks for consent and honours GPC: nothing is stored for a
            # visitor whose site's rules are unknown.
            "privacy": {
                "consent_required": not checked or account.tracking_consent == Account.Consent.REQUIRED,
                "honour_gpc": not checked or account.honour_gpc,
            },
        },
    )
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    response = get_conditional_response(request, etag=etag) or HttpResponse(
        body, content_type="text/javascript; charset=utf-8"
    )
    response["ETag"] = etag
    max_age = BEACON_CACHE_SECONDS if checked else 60
    patch_cache_control(response, public=True, max_age=max_age, stale_while_revalidate=86400)
    return response


def _paths(site_key: str, *, first_party: bool) -> tuple[str, str]:
    """The script's path and the collect endpoint's, in the standard or the first-party layout."""
    if first_party:
        return (
            reverse("tracking:script_first_party", args=[site_key]),
            reverse("tracking:collect_first_party", args=[site_key]),
        )
    return reverse("tracking:beacon", args=[site_key]), reverse("tracking:collect", args=[site_key])


def _method_not_allowed(request) -> HttpResponse:
    # A HEAD answer has no body (HTTP says so; a server that sent one would corrupt a kept-alive connection).
    response = (
        HttpResponse(status=405)
        if request.method == "HEAD"
        else _error(405, "METHOD_NOT_ALLOWED", "Send hits with POST.")
    )
    response["Allow"] = "POST"
    return response


@csrf_exempt
@csp_exempt()
def collect_not_found(request):
    """/collect/ followed by anything but a site key."""
    return _error(404, "NOT_FOUND", "Hits go to /collect/<site key>, without a trailing slash or a sub-path.")


def _debugger_note(**entry) -> None:
    """An event debugger entry for a refused hit; a database that cannot be reached costs the entry, not the answer."""
    try:
        services.rejected_hit_record(**entry)
    except DatabaseError:
        logger.warning("Could not write an event debugger entry for account %s", entry["account"].pk)


def _unavailable(exc: Unavailable) -> JsonResponse:
    response = _error(503, "UNAVAILABLE", exc.message)
    response["Retry-After"] = str(exc.retry_after)
    return response


@csrf_exempt
@csp_exempt()  # a JSON answer to a script: no policy applies to it, and building one costs every hit
def collect(request, site_key: str):
    """Receives one beacon hit (text/plain JSON), checks it, and hands it to capture: queued durably, or recorded at
    once when no queue is configured. Then answers.

    202 {"status": "accepted", "id": <hit id>} once queued; 200 {"status": "recorded" | "duplicate" | "identified",
    "id": ...} when recorded inline. 4xx: refused, with {code, message}; the beacon does not retry those. 503 with
    Retry-After: try again later (the beacon retries with backoff).
    """
    if request.method != "POST":
        return _method_not_allowed(request)
    try:
        account = account_get_by_site_key(site_key=site_key)
    except DatabaseError:
        return _unavailable(Unavailable(settings.INGEST_RETRY_AFTER_SECONDS))
    if (refused := guards.collect_guard(request, account)) is not None:
        return refused
    if account is None:
        return _error(404, "UNKNOWN_SITE", "No account has this site key; copy the install snippet again.")
    if hit_refused_for_privacy(request=request, account=account):
        return JsonResponse({"status": "not_tracked"})
    origin = request.headers.get("Origin")
    if origin and not origin_allowed(account=account, origin=origin):
        message = f"Hits from {origin[:200]} are refused: add its host name to the account's domains."
        _debugger_note(account=account, reason=Reason.FORBIDDEN_ORIGIN, message=message)
        response = _error(403, Reason.FORBIDDEN_ORIGIN, message)
        # This refusal, and only it, may be read by the foreign page: the beacon then stops instead of retrying a
        # hit it cannot read the answer to for a day. The answer holds nothing but the refusal.
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
        return response
    # Read at most one byte over the cap: an oversized body is refused without holding it in memory.
    raw = request.read(BODY_MAX_BYTES + 1)
    try:
        hit = hit_parse(raw)
        if hit_from_bot(account=account, hit=hit, user_agent=request.headers.get("User-Agent", "")):
            return JsonResponse({"status": "not_tracked"})
        definition = hit_check(account=account, hit=hit)
        item = HitItem(account_id=account.pk, received_at=timezone.now(), hit=hit, definition=definition)
        (outcome,) = capture(account=account, items=[item])
        if outcome.status == "refused":
            raise outcome.error
    except HitError as exc:
        _debugger_note(
            account=account,
            reason=exc.code,
            message=exc.message,
            slug=exc.slug,
            excerpt=raw[:300].decode("utf-8", "replace"),
        )
        return _error(exc.status, exc.code, exc.message)
    except Unavailable as exc:
        return _unavailable(exc)
    # The id tells the sender which hit this answers (the benchmark checks every accepted hit against the database).
    return JsonResponse({"status": outcome.status, "id": hit.id}, status=202 if outcome.status == "accepted" else 200)


@csrf_exempt
def bench_noop(request):
    """The baseline of bench/collect_bench.py: Django's fixed cost per request (the same middleware, URL routing and
    a read of the body) and nothing else. Answers 404 unless BENCH_NOOP_VIEW is set, so production exposes nothing."""
    if not settings.BENCH_NOOP_VIEW:
        raise Http404
    request.read(BODY_MAX_BYTES + 1)
    return JsonResponse({"status": "ok"})


@csrf_exempt
def bench_xadd(request, site_key: str):
    """The second reference of bench/collect_bench.py: the no-op view plus one XADD of the body to the ingest queue's
    Redis, the least a request that queues a hit durably costs. 404 unless BENCH_NOOP_VIEW is set."""
    if not settings.BENCH_NOOP_VIEW:
        raise Http404
    from . import queue

    account = account_get_by_site_key(site_key=site_key)
    if account is None:
        raise Http404
    body = request.read(BODY_MAX_BYTES + 1)
    queue.client().xadd("paminga:bench:xadd", {"i": body})
    return JsonResponse({"status": "ok"})


def demo(request, subpath: str = ""):
    """A demo website for the demo account (`manage.py seed_demo`) with buttons that fire its custom events through
    the real beacon, and what was recorded."""
    page = subpath.strip("/") or "home"
    account = selectors.demo_account()
    if account is None or page not in DEMO_PAGES:
        raise Http404("No demo account: run `python manage.py seed_demo`." if account is None else "No such page.")
    context = {
        "account": account,
        "base_url": request.build_absolute_uri("/"),
        "events": selectors.custom_event_list_for_demo(account=account),
        "recent_records": selectors.event_record_recent(account=account, limit=10),
        "recent_impressions": selectors.impression_recent(account=account, limit=10),
        "page": page,
    }
    return render(request, "tracking/demo.html", context)


@account_required
def event_debugger(request):
    reason = request.GET.get("reason", "")
    if reason not in Reason.values:
        reason = ""
    counts = selectors.rejected_hit_counts(account=request.account)
    context = {
        "entries": selectors.rejected_hit_list(account=request.account, reason=reason, limit=200),
        "reasons": [(value, label, counts.get(value, 0)) for value, label in Reason.choices],
        "reason": reason,
        "keep": settings.TRACKING_DEBUGGER_KEEP,
        "untracked": untracked_hit_totals(account=request.account),
        "queued": _queue_lag(),
    }
    return render(request, "tracking/event_debugger.html", context)


def _queue_lag() -> dict | None:
    """Whether anything waits in the ingest queue, when there is one: the page says that the newest hits may not be
    listed yet (without figures: the queue holds every account's hits)."""
    from . import queue

    if not queue.queue_enabled():
        return None
    try:
        lag = queue.queue_lag()
    except Exception:  # noqa: BLE001 - the page shows what is recorded; the queue's state is a courtesy
        return None
    return lag if lag["waiting"] else None
