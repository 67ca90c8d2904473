import hashlib
import hmac
import secrets

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from .models import Account, ApiKey, Membership, new_webhook_secret

API_KEY_PREFIX = "pmg"


def account_create(*, name: str, slug: str, domains: list[str] | None = None, time_zone: str = "UTC") -> Account:
    account = Account(name=name, slug=slug, domains=[d.strip().lower() for d in (domains or []) if d.strip()])
    account.time_zone = time_zone
    account.full_clean()
    account.save()
    return account


def account_update(*, account: Account, **fields) -> Account:
    allowed = {"name", "domains", "time_zone", "session_timeout_minutes"}
    for key, value in fields.items():
        if key not in allowed:
            raise TypeError(f"account_update() got an unexpected field {key!r}")
        setattr(account, key, value)
    account.full_clean()
    account.save()
    from tracking.cache import account_cache_clear  # the beacon caches accounts by site key

    account_cache_clear(account=account)
    return account


def account_webhook_secret_rotate(*, account: Account) -> Account:
    """A new webhook signing secret; the old one stops being used at once (retries sign with the new one)."""
    account.webhook_secret = new_webhook_secret()
    account.save(update_fields=["webhook_secret"])
    return account


def membership_create(*, account: Account, user, role: str = Membership.Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.get_or_create(account=account, user=user, defaults={"role": role})
    return membership


def user_get_or_create(*, email: str, password: str | None = None):
    User = get_user_model()
    email = email.strip().lower()
    user = User.objects.filter(username=email).first()
    if user is None:
        user = User(username=email, email=email)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean()
        user.save()
    elif password and not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    return user


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, account: Account, name: str, created_by=None) -> tuple[ApiKey, str]:
    """Returns the key and its secret. The secret is shown once and never stored."""
    name = (name or "").strip()
    with transaction.atomic():
        while True:
            prefix = secrets.token_hex(4)
            if not ApiKey.objects.filter(prefix=prefix).exists():
                break
        secret = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        api_key = ApiKey(
            account=account, name=name, prefix=prefix, secret_hash=_hash_secret(secret), created_by=created_by
        )
        api_key.full_clean()
        api_key.save()
    return api_key, secret


# Verified keys are remembered briefly, so that an API request does not pay a database query to authenticate.
# Revoking clears the entry: at once everywhere with a shared cache (CACHE_URL=redis://..., as in production), and
# within API_KEY_CACHE_SECONDS in other processes with the per-process default cache.
API_KEY_CACHE_SECONDS = 10


def _api_key_cache_key(secret_hash: str) -> str:
    return f"apikey:{secret_hash}"


def api_key_authenticate(*, secret: str) -> ApiKey | None:
    """The active key whose secret this is, or None. Marks when it was last used (at most once a minute)."""
    parts = (secret or "").strip().split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(secret) > 200:
        return None
    secret_hash = _hash_secret(secret.strip())
    cache_key = _api_key_cache_key(secret_hash)
    api_key = cache.get(cache_key)
    from_cache = api_key is not None
    if not from_cache:
        api_key = ApiKey.objects.select_related("account").filter(prefix=parts[1], revoked_at__isnull=True).first()
        if api_key is None or not hmac.compare_digest(api_key.secret_hash, secret_hash):
            return None
    now = timezone.now()
    mark_use = api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60
    if mark_use:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    if mark_use or not from_cache:
        cache.set(cache_key, api_key, API_KEY_CACHE_SECONDS)
    return api_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    cache.delete(_api_key_cache_key(api_key.secret_hash))
    return api_key
