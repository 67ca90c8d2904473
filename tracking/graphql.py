"""GraphQL for firing custom events: `triggerCustomEvent`, exactly as the spec writes it, and `triggerCustomEvents`.

Resolvers are thin: each input is validated (tracking.api), its slug checked, and the accepted events handed to
capture (tracking.capture), which queues them or records them inline. Errors have the shape and the codes of
custom_events.graphql (CustomEventErrorCode).
"""

import graphene
from django.core.exceptions import ValidationError
from django.utils import timezone

from custom_events.graphql import CustomEventErrorCode, MarketingChannel, api_error
from paminga.graphql_core import JSON, ApiError, account_from_info

from .api import api_event_clean
from .capture import Unavailable, api_event_check, capture
from .items import ApiItem, capture_id

TRIGGER_BATCH_MAX = 100


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
        return api_event_clean(**dict(item))
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
        if results[index] is not None:
            continue
        checked = api_event_check(account=account, event=event)
        if isinstance(checked, ValidationError):
            results[index] = checked
            continue
        item = ApiItem(account_id=account.pk, received_at=now, event=event, definition=checked, capture_id=capture_id())
        accepted.append((index, item))
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


class TrackingMutation(graphene.ObjectType):
    trigger_custom_event = graphene.Boolean(
        name="triggerCustomEvent",
        required=True,
        input=graphene.Argument(TriggerCustomEventInput, required=True, description="The event to fire."),
        description="Fires a custom event for a contact identified by email (created if not found), with "
        "`source = api`, and runs the event's actions. True once accepted: recorded, or queued durably and recorded "
        "moments later. Errors carry `extensions.code` "
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

    def resolve_trigger_custom_event(root, info, input):
        (outcome,) = _trigger(info, [_clean(input)])
        if outcome is not None:
            raise api_error(outcome) from None
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
            error = api_error(outcome)
            results.append(
                TriggerCustomEventResult(
                    index=index,
                    ok=False,
                    error=CustomEventError(code=error.code, message=error.message, field=error.field),
                )
            )
        return results
