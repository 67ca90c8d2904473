from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, ProhibitNullCharactersValidator, RegexValidator
from django.db import models
from django.db.models.functions import Lower

from .metadata_schema import SchemaMode, validate_metadata_schema

SLUG_MAX_LENGTH = 100
SLUG_PATTERN = r"^[a-z0-9-]+$"
# Paminga's own event types; a custom event may not take their names.
RESERVED_SLUGS = frozenset({"impression", "form-submission"})


def validate_custom_event_slug(value: str) -> None:
    """The spec's slug rules, one message per rule. Used by the model, the settings form, GraphQL and the beacon."""
    if value is None or value == "":
        raise ValidationError("Enter a slug.", code="required")
    if any(ch.isspace() for ch in value):
        raise ValidationError(
            "Slugs cannot contain spaces: use hyphens, e.g. watched-product-video.", code="slug_space"
        )
    if "_" in value:
        raise ValidationError("Slugs cannot contain underscores: use hyphens instead.", code="slug_underscore")
    if any(ch.isupper() for ch in value):
        raise ValidationError("Slugs must be lowercase.", code="slug_uppercase")
    if not RegexValidator(SLUG_PATTERN).regex.match(value):
        raise ValidationError(
            "Slugs may contain only lowercase letters, numbers and hyphens.", code="slug_invalid_characters"
        )
    if len(value) > SLUG_MAX_LENGTH:
        raise ValidationError(
            "Slugs can be at most %(max)d characters.", code="slug_too_long", params={"max": SLUG_MAX_LENGTH}
        )
    if value in RESERVED_SLUGS:
        raise ValidationError(
            "“%(slug)s” is reserved by Paminga and cannot be used.", code="slug_reserved", params={"slug": value}
        )


class MarketingChannel(models.TextChoices):
    """The spec's MarketingChannel values (also the GraphQL enum)."""

    DIRECT_TRAFFIC = "DIRECT_TRAFFIC", "Direct traffic"
    ORGANIC_SEARCH = "ORGANIC_SEARCH", "Organic search"
    PAID_SEARCH = "PAID_SEARCH", "Paid search"
    ORGANIC_SOCIAL = "ORGANIC_SOCIAL", "Organic social"
    PAID_SOCIAL = "PAID_SOCIAL", "Paid social"
    EMAIL_MARKETING = "EMAIL_MARKETING", "Email marketing"
    DISPLAY_AD = "DISPLAY_AD", "Display advertising"
    REFERRAL = "REFERRAL", "Referral"
    VIRTUAL_EVENT = "VIRTUAL_EVENT", "Virtual event"
    PHYSICAL_EVENT = "PHYSICAL_EVENT", "Physical event"
    OUTBOUND_CALL = "OUTBOUND_CALL", "Outbound call"
    INBOUND_CALL = "INBOUND_CALL", "Inbound call"
    DIRECT_MAIL = "DIRECT_MAIL", "Direct mail"
    AFFILIATE = "AFFILIATE", "Affiliate"
    OTHER_CAMPAIGNS = "OTHER_CAMPAIGNS", "Other campaigns"
    INTERNAL_TRAFFIC = "INTERNAL_TRAFFIC", "Internal traffic"
    VIDEO_HOSTING_PLATFORM = "VIDEO_HOSTING_PLATFORM", "Video hosting platform"
    UNKNOWN = "UNKNOWN", "Unknown"
    NONE = "NONE", "No channel"


class CustomEvent(models.Model):
    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="custom_events")
    # Null characters are refused here (not only in the forms) because PostgreSQL cannot store them in text.
    name = models.CharField(
        max_length=200,
        validators=[ProhibitNullCharactersValidator()],
        help_text="The display label, e.g. Watched Product Video.",
    )
    slug = models.CharField(
        max_length=SLUG_MAX_LENGTH,
        validators=[validate_custom_event_slug],
        error_messages={"blank": "Enter a slug."},
        help_text="What your website code passes to captureEvent: lowercase letters, numbers and hyphens.",
    )
    # TextField's max_length only reaches forms: the validator makes the API enforce it too.
    description = models.TextField(
        blank=True, max_length=5000, validators=[MaxLengthValidator(5000), ProhibitNullCharactersValidator()]
    )
    counts_as_conversion = models.BooleanField(
        default=False,
        help_text="Firing this event marks a conversion, attributed to the most recent impression in the "
        "visitor's current session.",
    )
    # The properties its metadata should have (custom_events/metadata_schema.py) and what a violation does. Changing
    # them never rewrites recorded events: occurrences are checked once, when they are recorded.
    metadata_schema = models.JSONField(default=list, blank=True, validators=[validate_metadata_schema])
    metadata_schema_mode = models.CharField(
        "Metadata schema",
        max_length=8,
        choices=SchemaMode.choices,
        default=SchemaMode.OFF,
        help_text="What an occurrence whose metadata breaks the schema does.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Set when the event is deleted: from then on it is gone from every page and API and capture refuses its slug,
    # while a background task removes its recorded rows in batches (automations.deletes) and then the row itself.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "slug"]
        constraints = [
            # Among the events not deleted: a deleted event's slug can be used again at once.
            models.UniqueConstraint(
                fields=["account", "slug"],
                condition=models.Q(deleted_at__isnull=True),
                name="custom_event_unique_slug_per_account",
                violation_error_message="This slug is already used by another custom event in this account.",
            ),
            models.CheckConstraint(
                condition=models.Q(slug__regex=SLUG_PATTERN) & ~models.Q(slug__in=sorted(RESERVED_SLUGS)),
                name="custom_event_slug_format",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class MarketingSource(models.Model):
    """A named source of traffic (a partner, a newsletter, a trade show) in one marketing channel."""

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="marketing_sources")
    name = models.CharField(max_length=200, validators=[ProhibitNullCharactersValidator()])
    channel = models.CharField(max_length=32, choices=MarketingChannel.choices, default=MarketingChannel.UNKNOWN)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the source is deleted: hidden at once; a background task unlinks its events, then removes it.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                "account",
                condition=models.Q(deleted_at__isnull=True),
                name="marketing_source_unique_name_per_account",
                violation_error_message="A marketing source with this name already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name
