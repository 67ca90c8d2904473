"""The current account of a logged-in user: every settings page works on it."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .models import Membership
from .selectors import account_get_for_user, account_list_for_user, membership_role

SESSION_KEY = "current_account_id"


def current_account(request):
    """The account chosen in this browser session, else the user's first; None if the user has none."""
    if not request.user.is_authenticated:
        return None
    if hasattr(request, "_current_account"):
        return request._current_account
    account = None
    account_id = request.session.get(SESSION_KEY)
    if account_id:
        account = account_get_for_user(user=request.user, account_id=account_id)
    if account is None:
        account = account_list_for_user(user=request.user).first()
        if account is not None:
            request.session[SESSION_KEY] = account.pk
    request._current_account = account
    return account


# Settings that act for the whole account (its domains, API keys, the webhook signing secret) are changed by owners
# and admins only; members use everything else.
MANAGER_ROLES = {Membership.Role.OWNER, Membership.Role.ADMIN}


def account_can_manage(request) -> bool:
    """Whether the user may change the current account's settings and secrets."""
    if not hasattr(request, "_account_can_manage"):
        role = membership_role(user=request.user, account=request.account)
        request._account_can_manage = role in MANAGER_ROLES
    return request._account_can_manage


def account_required(view):
    """Login required, and `request.account` set to the current account."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        account = current_account(request)
        if account is None:
            return render(request, "paminga/no_account.html", status=403)
        request.account = account
        return view(request, *args, **kwargs)

    return wrapper
