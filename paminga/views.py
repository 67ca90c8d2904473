from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from . import services
from .accounts import SESSION_KEY, account_required
from .forms import AccountSettingsForm
from .selectors import account_get_for_user


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
    form = AccountSettingsForm(request.POST or None, instance=request.account)
    if request.method == "POST" and form.is_valid():
        try:
            services.account_update(account=request.account, **{f: form.cleaned_data[f] for f in form.Meta.fields})
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Account settings saved.")
            return redirect("account_settings")
    return render(request, "paminga/account_settings.html", {"form": form, "account": request.account})


def healthz(request):
    """Liveness for load balancers and docker-compose."""
    return HttpResponse("ok", content_type="text/plain")


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
