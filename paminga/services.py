import hashlib
import hmac
import secrets
import time

from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
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
    for key, value in fields.items():
        if key not in Account.SETTINGS_FIELDS:
            raise TypeError(f"account_update() got an unexpected field {key!r}")
        setattr(account, key, value)
    account.full_clean()
    account.save()
    from .cache import account_cache_clear  # the beacon caches accounts by site key

    account_cache_clear(account=account)
    return account


def account_delete(*, account: Account):
    """Hides the account at once (logins no longer reach it, its site key and API keys stop working) and schedules
    the removal of everything it holds in the background, whatever its size. Returns the BackgroundDelete."""
    from automations.deletes import background_delete_schedule
    from custom_events.cache import custom_events_cache_clear

    from .cache import account_cache_clear

    with transaction.atomic():
        Account.objects.filter(pk=account.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
        for api_key in ApiKey.objects.filter(account=account, revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)  # also forgets the cached copies of the key
        job = background_delete_schedule(kind="account", account=account, target_id=account.pk, label=account.slug)
    account_cache_clear(account=account)
    custom_events_cache_clear(account=account)
    return job


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


# Verified keys are remembered briefly, so that an API request does not pay a database query to authenticate: in the
# shared cache for API_KEY_CACHE_SECONDS, and in front of it in each process for paminga.cache.MEMO_SECONDS (no cache
# round trip and no unpickling per request). Revoking clears both in the revoking process and the shared cache; other
# processes stop accepting the key within MEMO_SECONDS with a shared cache (CACHE_URL=redis://..., as in production),
# and within API_KEY_CACHE_SECONDS + MEMO_SECONDS with the per-process default cache.
API_KEY_CACHE_SECONDS = 10
# A key's last use is written at most this often per process: "last used" is a coarse hint, and a write per request
# would cost a round trip and a row lock that every concurrent request of the key waits on.
API_KEY_LAST_USED_PRECISION_SECONDS = 60


def _api_key_cache_key(secret_hash: str) -> str:
    # By hash, not secret: no plain secret is kept in a cache or in memory beyond its request (a SHA-256 of a
    # 50-character secret costs about a microsecond).
    return f"apikey:{secret_hash}"


def api_key_authenticate(*, secret: str) -> ApiKey | None:
    """The active key whose secret this is, or None. Marks when it was last used (at most once a minute)."""
    from .cache import STALE_SECONDS, cache_delete, cache_get, cache_set, memo_clear, memo_get, memo_set

    parts = (secret or "").strip().split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(secret) > 200:
        return None
    secret_hash = _hash_secret(secret.strip())
    cache_key = _api_key_cache_key(secret_hash)
    api_key, source = memo_get(cache_key), "memo"
    # The shared cache holds (fresh until, key) for a day: fresh for API_KEY_CACHE_SECONDS, then only a fallback for
    # when the database cannot be reached, so that events keep being queued through an outage.
    entry = cache_get(cache_key) if api_key is None else None
    if api_key is None and entry is not None and entry[0] > time.time():
        api_key, source = entry[1], "cache"
    if api_key is None:
        try:
            api_key, source = (
                ApiKey.objects.select_related("account")
                .filter(prefix=parts[1], revoked_at__isnull=True, account__deleted_at__isnull=True)
                .first(),
                "db",
            )
        except DatabaseError:
            stale = entry[1] if entry is not None else memo_get(cache_key, stale=True)
            if stale is None:
                raise
            return stale
        if api_key is None or not hmac.compare_digest(api_key.secret_hash, secret_hash):
            return None
    now = timezone.now()
    last_used_at = api_key.last_used_at
    mark_use = last_used_at is None or (now - last_used_at).total_seconds() > API_KEY_LAST_USED_PRECISION_SECONDS
    if mark_use:
        # Set first: the other threads of this process share the remembered object and then skip the write.
        api_key.last_used_at = now
        # The write checks the key again, so a remembered copy is never put back in the cache after a revocation.
        try:
            still_active = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(last_used_at=now)
        except DatabaseError:
            # The database cannot be reached: a key read from the cache or memory stays good while it is there,
            # so that events keep being queued (its last use is written next time).
            if source == "db":
                raise
            api_key.last_used_at = last_used_at
            return api_key
        if not still_active:
            cache_delete(cache_key)
            memo_clear(cache_key)
            return None
    if source == "db" or mark_use:
        cache_set(cache_key, (time.time() + API_KEY_CACHE_SECONDS, api_key), STALE_SECONDS)
    if source != "memo" or mark_use:
        memo_set(cache_key, api_key)
    return api_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    from .cache import cache_delete, memo_clear

    cache_delete(_api_key_cache_key(api_key.secret_hash))
    memo_clear(_api_key_cache_key(api_key.secret_hash))
    return api_key
