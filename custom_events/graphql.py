"""GraphQL for custom event definitions (`custom_events`, `custom_event`, `create_custom_event`, ...) and the error
codes every custom event operation shares; firing them (`triggerCustomEvent`, `triggerCustomEvents`) is in
tracking.graphql, beside the write path it feeds.

Resolvers are thin: they take the account from the API key, call one service and turn its ValidationError into
the one error shape (`extensions: {code, field}`) with a code from CustomEventErrorCode.
"""

import graphene
from django.core.exceptions import ValidationError

from paminga.graphql_core import ApiError, account_from_info, api_error_from_validation

from . import selectors, services
from .metadata_schema import PROPERTY_TYPES, SchemaMode
from .models import SLUG_MAX_LENGTH
from .models import MarketingChannel as MarketingChannelChoices


class CustomEventErrorCode(graphene.Enum):
    """Why a custom event operation failed: `extensions.code` of a GraphQL error, or `error.code` of an item of
    triggerCustomEvents."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    INVALID_EMAIL = "INVALID_EMAIL"
    METADATA_TOO_LARGE = "METADATA_TOO_LARGE"
    INVALID_METADATA = "INVALID_METADATA"
    INVALID_INPUT = "INVALID_INPUT"
    UNAVAILABLE = "UNAVAILABLE"

    @property
    def description(self):
        return {
            "UNAUTHENTICATED": "The API key is missing, wrong or revoked (HTTP 401; nothing was executed).",
            "UNKNOWN_EVENT": "No custom event with this slug in the API key's account.",
            "INVALID_EMAIL": "The email is not a valid email address.",
            "METADATA_TOO_LARGE": "The metadata is over 4,096 bytes once serialized as JSON. Unlike the beacon, "
            "which drops such metadata and records the event, the API refuses the event so the caller can fix it.",
            "INVALID_METADATA": "The metadata breaks the event's metadata schema, whose mode is enforce: `field` "
            "names the first property at fault (e.g. metadata.planTier) and the message every violation.",
            "INVALID_INPUT": "Another input is invalid (too long, malformed, not allowed); `field` names it.",
            "UNAVAILABLE": "The event could not be accepted right now (HTTP 503 with Retry-After; nothing was "
            "recorded): retry after that many seconds, with the same idempotency_key.",
        }[self.name]


# ValidationError codes of the services that have a code of their own; every other one is INVALID_INPUT.
ERROR_CODES = {
    "unknown_event": CustomEventErrorCode.UNKNOWN_EVENT.value,
    "invalid_email": CustomEventErrorCode.INVALID_EMAIL.value,
    "metadata_too_large": CustomEventErrorCode.METADATA_TOO_LARGE.value,
    "metadata_schema": CustomEventErrorCode.INVALID_METADATA.value,
}


def api_error(exc: ValidationError, *, name_fields: bool = False) -> ApiError:
    """A service's ValidationError as the one error shape, with this module's codes."""
    return api_error_from_validation(exc, error_codes=ERROR_CODES, name_fields=name_fields)


MarketingChannel = graphene.Enum.from_enum(
    MarketingChannelChoices,
    description=lambda value: (
        value.label
        if value is not None
        else "The marketing channel an event is attributed to (the spec's MarketingChannel values)."
    ),
)


_TYPES = ", ".join(f"`{t}`" for t in PROPERTY_TYPES)
_MODES = "`off` (not checked, the default), `warn` (recorded with the metadata, each violation listed in the event "
_MODES += "debugger) or `enforce` (the beacon's event is recorded without the metadata, an API call is refused with "
_MODES += "INVALID_METADATA)"


class MetadataProperty(graphene.ObjectType):
    """One property of a custom event's metadata schema."""

    name = graphene.String(required=True, description="The metadata key, e.g. planTier.")
    type = graphene.String(required=True, description=f"One of {_TYPES}.")
    required = graphene.Boolean(required=True, description="Whether every occurrence's metadata must have it.")
    allowed_values = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description="For strings (and string lists): the values allowed; empty allows any.",
    )


class MetadataPropertyInput(graphene.InputObjectType):
    """One property of a metadata schema, as given to create_custom_event and update_custom_event."""

    name = graphene.String(required=True, description="The metadata key (at most 100 characters, unique).")
    type = graphene.String(required=True, description=f"One of {_TYPES}.")
    required = graphene.Boolean(description="Whether every occurrence's metadata must have it. Default false.")
    allowed_values = graphene.List(
        graphene.NonNull(graphene.String),
        description="For `string` and `string list` only: the values allowed (at most 100, each at most 200 "
        "characters). Omitted or empty allows any.",
    )


class CustomEventType(graphene.ObjectType):
    """A custom event definition of the account, with its totals."""

    class Meta:
        name = "CustomEvent"

    name = graphene.String(required=True, description="The display label, e.g. Watched Product Video.")
    slug = graphene.String(
        required=True, description="What the website passes to $__MA.captureEvent() and the API to triggerCustomEvent."
    )
    description = graphene.String(required=True, description="Free-form notes about the event; may be empty.")
    counts_as_conversion = graphene.Boolean(
        required=True, description="Whether firing the event is recorded as a conversion."
    )
    metadata_schema = graphene.List(
        graphene.NonNull(MetadataProperty),
        required=True,
        description="The properties its metadata should have; empty when it declares none.",
    )
    metadata_schema_mode = graphene.String(required=True, description=f"What a violation of the schema does: {_MODES}.")
    fires = graphene.Int(required=True, description="How many times the event has been recorded (beacon and API).")
    conversions = graphene.Int(required=True, description="How many of those were recorded as conversions.")
    created_at = graphene.DateTime(required=True, description="When the event was created.")
    updated_at = graphene.DateTime(required=True, description="When the event was last changed.")


class CreateCustomEventInput(graphene.InputObjectType):
    """A new custom event: the same rules as the settings page."""

    name = graphene.String(required=True, description="The display label (at most 200 characters).")
    slug = graphene.String(
        required=True,
        description="Lowercase letters, numbers and hyphens only; unique in the account; `impression` and "
        f"`form-submission` are reserved (at most {SLUG_MAX_LENGTH} characters).",
    )
    description = graphene.String(description="Optional free-form text (at most 5,000 characters).")
    counts_as_conversion = graphene.Boolean(description="Record each firing as a conversion. Default false.")
    metadata_schema = graphene.List(
        graphene.NonNull(MetadataPropertyInput),
        description="The properties its metadata should have (at most 50). Default none.",
    )
    metadata_schema_mode = graphene.String(description=f"What a violation of the schema does: {_MODES}.")


class UpdateCustomEventInput(graphene.InputObjectType):
    """Changes to a custom event: only the fields given (not null) change, with the settings page's rules."""

    name = graphene.String(description="A new display label.")
    slug = graphene.String(description="A new slug. Website and API callers using the old slug will stop matching.")
    description = graphene.String(description="New free-form text; an empty string clears it.")
    counts_as_conversion = graphene.Boolean(description="Record each firing as a conversion from now on.")
    metadata_schema = graphene.List(
        graphene.NonNull(MetadataPropertyInput),
        description="A new metadata schema, replacing the whole list ([] removes every property). Applies to "
        "occurrences from now on: recorded events are never rewritten.",
    )
    metadata_schema_mode = graphene.String(description=f"A new mode: {_MODES}.")


def _schema_input(properties) -> list[dict] | None:
    """The GraphQL input as the plain JSON the service validates (custom_events.metadata_schema)."""
    if properties is None:
        return None
    return [
        {key: value for key, value in dict(prop).items() if value is not None or key == "name"} for prop in properties
    ]


def _slug_argument_check(slug: str) -> None:
    if len(slug) > SLUG_MAX_LENGTH:
        raise ApiError(
            f"slug can be at most {SLUG_MAX_LENGTH} characters.",
            code=CustomEventErrorCode.INVALID_INPUT,
            field="slug",
        )


def _event_or_error(account, slug: str):
    _slug_argument_check(slug)
    event = selectors.custom_event_get(account=account, slug=slug)
    if event is None:
        raise ApiError(
            f"No custom event with the slug “{slug}” in this account.",
            code=CustomEventErrorCode.UNKNOWN_EVENT,
            field="slug",
        )
    return event


def _with_counts(account, event):
    return selectors.custom_event_list_with_counts(account=account).get(pk=event.pk)


class CustomEventsQuery(graphene.ObjectType):
    custom_events = graphene.List(
        graphene.NonNull(CustomEventType),
        required=True,
        description="The account's custom events, by name, each with its fire and conversion counts.",
    )
    custom_event = graphene.Field(
        CustomEventType,
        slug=graphene.String(required=True, description="The event's slug."),
        description="One custom event of the account by its slug; null when the account has none with that slug.",
    )

    def resolve_custom_events(root, info):
        return selectors.custom_event_list_with_counts(account=account_from_info(info))

    def resolve_custom_event(root, info, slug):
        account = account_from_info(info)
        _slug_argument_check(slug)
        return selectors.custom_event_list_with_counts(account=account).filter(slug=slug).first()


class CustomEventsMutation(graphene.ObjectType):
    create_custom_event = graphene.Field(
        CustomEventType,
        required=True,
        input=graphene.Argument(CreateCustomEventInput, required=True, description="The new event."),
        description="Creates a custom event; invalid input is INVALID_INPUT with the field at fault.",
    )
    update_custom_event = graphene.Field(
        CustomEventType,
        required=True,
        slug=graphene.String(required=True, description="The slug of the event to change."),
        input=graphene.Argument(UpdateCustomEventInput, required=True, description="The changes."),
        description="Changes a custom event; UNKNOWN_EVENT when the account has none with this slug.",
    )
    delete_custom_event = graphene.Boolean(
        required=True,
        slug=graphene.String(required=True, description="The slug of the event to delete."),
        description="Deletes a custom event with its recorded occurrences and actions. True once deleted; "
        "UNKNOWN_EVENT when the account has none with this slug.",
    )

    def resolve_create_custom_event(root, info, input):
        account = account_from_info(info)
        try:
            event = services.custom_event_create(
                account=account,
                name=input.name,
                slug=input.slug,
                description=input.description or "",
                counts_as_conversion=bool(input.counts_as_conversion),
                metadata_schema=_schema_input(input.metadata_schema),
                metadata_schema_mode=input.metadata_schema_mode or SchemaMode.OFF,
            )
        except ValidationError as exc:
            raise api_error(exc, name_fields=True) from None
        return _with_counts(account, event)

    def resolve_update_custom_event(root, info, slug, input):
        account = account_from_info(info)
        event = _event_or_error(account, slug)
        changes = {field: value for field, value in dict(input).items() if value is not None}
        if "metadata_schema" in changes:
            changes["metadata_schema"] = _schema_input(changes["metadata_schema"])
        try:
            services.custom_event_update(custom_event=event, **changes)
        except ValidationError as exc:
            raise api_error(exc, name_fields=True) from None
        return _with_counts(account, event)

    def resolve_delete_custom_event(root, info, slug):
        account = account_from_info(info)
        services.custom_event_delete(custom_event=_event_or_error(account, slug))
        return True
