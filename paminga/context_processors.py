from .accounts import current_account as _current_account
from .selectors import account_list_for_user


def current_account(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {
        "current_account": _current_account(request),
        "user_accounts": account_list_for_user(user=request.user),
    }
