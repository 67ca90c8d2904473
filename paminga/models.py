import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

ACCOUNT_SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
    "Use lowercase letters, numbers and single hyphens only.",
    code="invalid_slug",
)


def new_site_key() -> str:
    # Public: it is pasted into customers' websites. Unguessable only so that nobody can enumerate accounts.
    return secrets.token_urlsafe(12)


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            "“%(value)s” is not a known time zone.", code="invalid_time_zone", params={"value": value}
        )


def validate_domains(value) -> None:
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise ValidationError("Domains must be a list of host names.", code="invalid_domains")
    host = RegexValidator(
        r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(:\d{1,5})?$",
        code="invalid_domain",
    )
    if len(value) > 50:
        raise ValidationError("At most 50 domains.", code="too_many_domains")
    for domain in value:
        try:
            host(domain)
        except ValidationError:
            raise ValidationError(
                "“%(domain)s” is not a host name (write it like example.com or *.example.com, without https://).",
                code="invalid_domain",
                params={"domain": domain},
            ) from None


class Account(models.Model):
    """A tenant: one customer with its websites, custom events, contacts and API keys."""

    # What its owners change on Settings → Account (the form) and through account_update().
    SETTINGS_FIELDS = (
        "name",
        "domains",
        "time_zone",
        "session_timeout_minutes",
        "tracking_consent",
        "honour_gpc",
        "honour_dnt",
        "retention_months",
        "strict_origin",
        "filter_bots",
    )

    class Consent(models.TextChoices):
        NOT_REQUIRED = "not_required", "Not required"
        REQUIRED = "required", "Required"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63, unique=True, validators=[ACCOUNT_SLUG_VALIDATOR])
    site_key = models.CharField(max_length=32, unique=True, default=new_site_key, editable=False)
    domains = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_domains],
        help_text="Host names of the account's websites (e.g. example.com, *.example.com). "
        "Only these origins may send beacon hits from a browser.",
    )
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    session_timeout_minutes = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text="A visit ends after this many minutes without activity.",
    )
    strict_origin = models.BooleanField(
        "Strict origin",
        default=False,
        help_text="Refuse beacon hits that come with neither an Origin nor a Referer on one of the domains above "
        "(scripts and bots that send no such header). Browsers send one; privacy tools that strip both lose "
        "their hits. Needs at least one domain.",
    )
    webhook_secret = models.CharField(max_length=80, default=new_webhook_secret, editable=False)
    # Privacy (docs/privacy.md).
    tracking_consent = models.CharField(
        "Tracking consent",
        max_length=16,
        choices=Consent.choices,
        default=Consent.NOT_REQUIRED,
        help_text="Required: the beacon stores and sends nothing until the site calls $__MA.consent(true).",
    )
    honour_gpc = models.BooleanField(
        "Honour Global Privacy Control",
        default=False,
        help_text="Visitors whose browser sends Global Privacy Control (Sec-GPC) are not tracked.",
    )
    honour_dnt = models.BooleanField(
        "Honour Do Not Track",
        default=False,
        help_text="Visitors whose browser sends Do Not Track (DNT: 1) are not tracked either.",
    )
    filter_bots = models.BooleanField(
        "Filter bots",
        default=True,
        help_text="Hits from known bots and crawlers (by user agent) and from automated browsers "
        "(navigator.webdriver) are counted in the event debugger, not recorded. Switch it off to test with such "
        "tools.",
    )
    retention_months = models.PositiveSmallIntegerField(
        "Raw data retention (months)",
        default=25,
        validators=[MinValueValidator(1), MaxValueValidator(120)],
        help_text="Page views, events, visits, debugger entries and action runs older than this are deleted. "
        "Report totals of those days stay.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the account is deleted: it is gone at once (logins, site key, API keys) while a background task
    # removes its rows in batches (automations.deletes) and then the account itself.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.strict_origin and not self.domains:
            raise ValidationError(
                {"strict_origin": "List your websites' domains first: strict origin accepts hits from them only."},
                code="strict_origin_without_domains",
            )

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "account"], name="membership_unique_user_account")]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.role})"


class ApiKey(models.Model):
    """A secret for the GraphQL API. Only a SHA-256 of the secret is stored.

    The secret has 256 bits of entropy, so a fast hash is enough (a slow password hash would only
    slow every API request); the public prefix finds the row without scanning.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
