from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import Account, ApiKey, Membership


def account_list_for_user(*, user) -> QuerySet[Account]:
    if not user.is_authenticated:
        return Account.objects.none()
    return Account.objects.filter(memberships__user=user, deleted_at__isnull=True).order_by("name")


def account_get_for_user(*, user, account_id: int) -> Account | None:
    return account_list_for_user(user=user).filter(pk=account_id).first()


def api_key_list(*, account: Account) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(account=account).order_by("revoked_at", "-created_at")


def api_key_get(*, account: Account, pk: int) -> ApiKey:
    return get_object_or_404(ApiKey, account=account, pk=pk)


def membership_role(*, user, account: Account) -> str | None:
    """The user's role in the account, or None when the user is not a member."""
    return Membership.objects.filter(user=user, account=account).values_list("role", flat=True).first()
