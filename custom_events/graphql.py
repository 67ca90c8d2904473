"""GraphQL for custom events: firing them (`triggerCustomEvent`, as the spec writes it, and `triggerCustomEvents`)
and managing their definitions (`custom_events`, `custom_event`, `create_custom_event`, ...).

Resolvers are thin: they take the account from the API key, call one service and turn its ValidationError into
the one error shape (`extensions: {code, field}`) with a code from CustomEventErrorCode.
"""

import graphene
from django.core.exceptions import ValidationError
from django.utils import timezone

from paminga.graphql_core import JSON, ApiError, account_from_info, api_error_from_validation
from tracking.capture import Unavailable, api_event_check, capture
from tracking.items import ApiItem

from . import selectors, services
from .metadata_schema import PROPERTY_TYPES, SchemaMode
from .models import SLUG_MAX_LENGTH
from .models import MarketingChannel as MarketingChannelChoices

TRIGGER_BATCH_MAX = 100


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


def _api_error(exc: ValidationError, *, name_fields: bool = False) -> ApiError:
    return api_error_from_validation(exc, error_codes=ERROR_CODES, name_fields=name_fields)


MarketingChannel = graphene.Enum.from_enum(
    MarketingChannelChoices,
    description=lambda value: (
        value.label
        if value is not None
        else "The marketing channel an event is attributed to (the spec's MarketingChannel values)."
    ),
)


class TriggerCustomEventInput(graphene.InputObjectType):
    """What to fire: the spec's Full Input Reference, plus `idempotency_key` and `visitor_id`."""

    slug = graphene.String(required=True, description="The slug of the Custom Event to fire.")
    email = graphene.String(
        required=True,
        description="Contact's email address. Created if not found (matched case-insensitively, at most 254 "
        "characters).",
    )
    page_url = graphene.String(description="The URL associated with the event (at most 2,000 characters).")
    utm_source = graphene.String(description="UTM source (at most 200 characters).")
    utm_medium = graphene.String(description="UTM medium (at most 200 characters).")
    utm_campaign = graphene.String(description="UTM campaign (at most 200 characters).")
    utm_term = graphene.String(description="UTM term (at most 200 characters).")
    utm_content = graphene.String(description="UTM content (at most 200 characters).")
    marketing_channel = MarketingChannel(
        description="Attribution channel. When omitted and `marketing_source` matches one of the account's "
        "marketing sources, that source's channel."
    )
    marketing_source = graphene.String(
        description="Attribution source name, matched case-insensitively against your account's marketing "
        "sources. A name that matches none is still recorded as given (at most 200 characters)."
    )
    metadata = JSON(
        description="Arbitrary key/value data stored with the event: a JSON object, inline or through a variable. "
        "Max 4,096 bytes serialized as JSON; larger metadata is refused with METADATA_TOO_LARGE. Checked against "
        "the event's metadata schema, if it has one: refused with INVALID_METADATA when its mode is enforce."
    )
    idempotency_key = graphene.String(
        description="Makes retries safe: a second request with the same key in your account records nothing and "
        "answers the same as the first (the key must name the same event and email). At most 150 characters."
    )
    visitor_id = graphene.String(
        description="The beacon's visitor id of the contact's browser, if your backend knows it: the visitor is "
        "identified as this contact and a conversion is attributed to the most recent impression of its current "
        "session, as for the beacon. At most 64 characters."
    )


def _clean(item):
    """The input's envelope validated, or the ValidationError that refuses it."""
    try:
        return services.custom_event_trigger_clean(**dict(item))
    except ValidationError as exc:
        return exc


def _trigger(info, events: list) -> list[ValidationError | None]:
    """Hands the valid events to capture (queued, or recorded at once) and returns, per input, None when it was
    accepted or the ValidationError that refused it. A refused input writes nothing and stops nothing."""
    account = account_from_info(info)
    results: list[ValidationError | None] = [event if isinstance(event, ValidationError) else None for event in events]
    now = timezone.now()
    accepted = []
    for index, event in enumerate(events):
        if results[index] is None:
            results[index] = api_event_check(account=account, event=event)
            if results[index] is None:
                accepted.append((index, ApiItem(account_id=account.pk, received_at=now, event=event)))
    try:
        outcomes = capture(account=account, items=[item for _, item in accepted])
    except Unavailable as exc:
        # The view answers 503 with this Retry-After; the caller retries the whole request.
        info.context.retry_after = exc.retry_after
        raise ApiError(exc.message, code=CustomEventErrorCode.UNAVAILABLE) from None
    for (index, _), outcome in zip(accepted, outcomes, strict=True):
        if outcome.status == "refused":
            results[index] = outcome.error
    return results


class CustomEventError(graphene.ObjectType):
    """Why one item of triggerCustomEvents was not recorded."""

    code = graphene.Field(CustomEventErrorCode, required=True, description="What went wrong.")
    message = graphene.String(required=True, description="A human-readable explanation.")
    field = graphene.String(description="The input field at fault, when there is one.")


class TriggerCustomEventResult(graphene.ObjectType):
    """The outcome of one input of triggerCustomEvents, in the order of the inputs."""

    index = graphene.Int(required=True, description="The position of the input in `inputs`, from 0.")
    ok = graphene.Boolean(
        required=True, description="True when the event is recorded (or was already, for its idempotency_key)."
    )
    error = graphene.Field(CustomEventError, description="Why the event was not recorded; null when ok.")


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
    trigger_custom_event = graphene.Boolean(
        name="triggerCustomEvent",
        required=True,
        input=graphene.Argument(TriggerCustomEventInput, required=True, description="The event to fire."),
        description="Fires a custom event for a contact identified by email (created if not found), with "
        "`source = api`, and runs the event's actions. True once recorded. Errors carry `extensions.code` "
        "(UNKNOWN_EVENT, INVALID_EMAIL, METADATA_TOO_LARGE, INVALID_METADATA, INVALID_INPUT) and "
        "`extensions.field`; nothing is recorded when there is an error.",
    )
    trigger_custom_events = graphene.List(
        graphene.NonNull(TriggerCustomEventResult),
        name="triggerCustomEvents",
        required=True,
        inputs=graphene.List(
            graphene.NonNull(TriggerCustomEventInput),
            required=True,
            description=f"Up to {TRIGGER_BATCH_MAX} events to fire.",
        ),
        description=f"Fires up to {TRIGGER_BATCH_MAX} custom events in one request, with one result per input in "
        "the same order. Each input is recorded or refused on its own: an invalid one does not stop the others.",
    )
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

    def resolve_trigger_custom_event(root, info, input):
        (outcome,) = _trigger(info, [_clean(input)])
        if outcome is not None:
            raise _api_error(outcome) from None
        return True

    def resolve_trigger_custom_events(root, info, inputs):
        if len(inputs) > TRIGGER_BATCH_MAX:
            account_from_info(info)
            raise ApiError(
                f"At most {TRIGGER_BATCH_MAX} events per request (got {len(inputs)}); nothing was recorded.",
                code=CustomEventErrorCode.INVALID_INPUT,
                field="inputs",
            )
        results = []
        for index, outcome in enumerate(_trigger(info, [_clean(item) for item in inputs])):
            if outcome is None:
                results.append(TriggerCustomEventResult(index=index, ok=True, error=None))
                continue
            error = _api_error(outcome)
            results.append(
                TriggerCustomEventResult(
                    index=index,
                    ok=False,
                    error=CustomEventError(code=error.code, message=error.message, field=error.field),
                )
            )
        return results

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
            raise _api_error(exc, name_fields=True) from None
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
            raise _api_error(exc, name_fields=True) from None
        return _with_counts(account, event)

    def resolve_delete_custom_event(root, info, slug):
        account = account_from_info(info)
        services.custom_event_delete(custom_event=_event_or_error(account, slug))
        return True
