from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import Account, ApiKey


def account_list_for_user(*, user) -> QuerySet[Account]:
    if not user.is_authenticated:
        return Account.objects.none()
    return Account.objects.filter(memberships__user=user).order_by("name")


def account_get_for_user(*, user, account_id: int) -> Account | None:
    return account_list_for_user(user=user).filter(pk=account_id).first()


def api_key_list(*, account: Account) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(account=account).order_by("revoked_at", "-created_at")


def api_key_get(*, account: Account, pk: int) -> ApiKey:
    return get_object_or_404(ApiKey, account=account, pk=pk)
