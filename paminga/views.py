import functools
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.staticfiles import finders
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_POST

from . import services
from .accounts import SESSION_KEY, account_can_manage, account_required
from .forms import AccountSettingsForm, ApiKeyForm, FirstPartyPathForm, LoginForm
from .selectors import account_get_for_user, api_key_get, api_key_list
from .site import site_url


def login_locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a login while the email or the address is locked out: the login page again, with the
    reason and when to retry, as 429 with Retry-After (the right password is refused too until then)."""
    minutes = settings.LOGIN_LOCKOUT_MINUTES
    message = (
        f"Too many failed logins for this email or from this network. Logging in is blocked for {minutes} minutes; "
        "wait, then try again."
    )
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    context = {"form": LoginForm(request, initial={"username": username[:254]}), "lockout_message": message}
    response = render(request, "registration/login.html", {**context, "next": request.POST.get("next", "")})
    response.status_code = 429
    response["Retry-After"] = str(minutes * 60)
    return response


@account_required
def home(request):
    return redirect("custom_events:list")


@require_POST
@account_required
def account_switch(request):
    account = account_get_for_user(user=request.user, account_id=_int(request.POST.get("account")))
    if account is None:
        messages.error(request, "You are not a member of that account.")
    else:
        request.session[SESSION_KEY] = account.pk
        messages.success(request, f"Switched to {account.name}.")
    next_url = request.POST.get("next") or reverse("home")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("home")
    return redirect(next_url)


@account_required
def account_settings(request):
    can_manage = account_can_manage(request)
    if request.method == "POST" and not can_manage:
        messages.error(request, "Only the account's owners and admins can change its settings.")
        context = {"form": AccountSettingsForm(instance=request.account), "account": request.account}
        return render(request, "paminga/account_settings.html", {**context, "can_manage": False}, status=403)
    form = AccountSettingsForm(request.POST or None, instance=request.account)
    if request.method == "POST" and form.is_valid():
        try:
            services.account_update(account=request.account, **{f: form.cleaned_data[f] for f in form.Meta.fields})
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Account settings saved.")
            return redirect("account_settings")
    context = {"form": form, "account": request.account, "can_manage": can_manage, **_first_party(request)}
    return render(request, "paminga/account_settings.html", context)


def _first_party(request) -> dict:
    """The first-party snippet's form, bound to ?first_party= when the page was asked for it, and the valid URL."""
    asked = "first_party" in request.GET
    first_party_form = FirstPartyPathForm(request.GET if asked else None)
    url = first_party_form.cleaned_data["first_party"] if asked and first_party_form.is_valid() else ""
    site_root = site_url(request=request).rstrip("/") + "/"
    return {"first_party_form": first_party_form, "first_party_url": url, "site_root": site_root}


@account_required
def api_keys(request):
    """The account's API keys (active first, then revoked) and a form to create one."""
    context = {
        "api_keys": api_key_list(account=request.account).select_related("created_by"),
        "form": ApiKeyForm(),
        "can_manage": account_can_manage(request),
    }
    return render(request, "paminga/api_keys.html", context)


@require_POST
@account_required
def api_key_create(request):
    if not account_can_manage(request):
        return _forbidden(request, "Only the account's owners and admins can create API keys.")
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        try:
            api_key, secret = services.api_key_create(
                account=request.account, name=form.cleaned_data["name"], created_by=request.user
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            # The secret is in this one response only: rendered, never redirected to, never stored, never cached.
            response = render(request, "paminga/api_key_created.html", {"api_key": api_key, "secret": secret})
            add_never_cache_headers(response)
            response["Cache-Control"] += ", no-store"
            return response
    context = {"api_keys": api_key_list(account=request.account), "form": form, "can_manage": True}
    return render(request, "paminga/api_keys.html", context, status=400)


@account_required
def api_key_revoke(request, pk: int):
    api_key = api_key_get(account=request.account, pk=pk)
    if not account_can_manage(request):
        return _forbidden(request, "Only the account's owners and admins can revoke API keys.")
    if request.method == "POST":
        services.api_key_revoke(api_key=api_key)
        messages.success(request, f"API key “{api_key.name}” revoked: requests with it are now refused.")
        return redirect("api_keys")
    return render(request, "paminga/api_key_revoke.html", {"api_key": api_key})


def _forbidden(request, message: str):
    messages.error(request, message)
    context = {"api_keys": api_key_list(account=request.account), "form": ApiKeyForm(), "can_manage": False}
    return render(request, "paminga/api_keys.html", context, status=403)


def healthz(request):
    """Liveness for load balancers and docker-compose: always 200 while the process serves. With the ingest queue
    on, it also reports the ingestion lag (items waiting, age of the oldest in seconds) as JSON, or that the queue
    cannot be reached, in which case capture records inline."""
    from tracking import queue

    if not queue.queue_enabled():
        return HttpResponse("ok", content_type="text/plain")
    try:
        ingest = queue.queue_lag()
    except Exception:  # noqa: BLE001 - whatever the queue's client raises, liveness answers
        ingest = {"queue": "unreachable"}
    return JsonResponse({"status": "ok", "ingest": ingest})


@functools.cache
def _favicon() -> bytes:
    return Path(finders.find("favicon.svg")).read_bytes()


@cache_control(public=True, max_age=86400)
def favicon(request):
    """/favicon.ico, which browsers ask for on every page that names no icon (the demo site, the admin, JSON
    answers): the same SVG the app's pages link to. Browsers go by the content type, not the name."""
    return HttpResponse(_favicon(), content_type="image/svg+xml")


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
