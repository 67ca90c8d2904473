"""Action management through GraphQL: list an event's actions, create, update (including reorder) and delete them.

Resolvers are thin: they resolve the account from the API key, look rows up through the selectors and call the
same services as the settings pages, so every rule and message is the pages' own. Validation errors come back
with `extensions.code` (ActionErrorCode) and `extensions.field` (`config.<setting>`, `condition.<key|op|value>`,
`kind`, ...).
"""

import graphene
from django.core.exceptions import ValidationError

from custom_events.selectors import custom_event_get
from paminga.graphql_core import JSON, ApiError, account_from_info

from . import selectors, services
from .actions import kind_get
from .conditions import OP_CHOICES
from .models import Action

# ---------------------------------------------------------------------------------------------------------------
# Types


class ActionErrorCode(graphene.Enum):
    """Error codes of the action management operations, beside the core's UNAUTHENTICATED and INTERNAL_ERROR:
    UNKNOWN_EVENT (no custom event with the slug), ACTION_NOT_FOUND (no action with the id in the account),
    INVALID_KIND, INVALID_CONFIG and INVALID_CONDITION (`field` names the value at fault), TOO_MANY_ACTIONS."""

    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    ACTION_NOT_FOUND = "ACTION_NOT_FOUND"
    INVALID_KIND = "INVALID_KIND"
    INVALID_CONFIG = "INVALID_CONFIG"
    INVALID_CONDITION = "INVALID_CONDITION"
    TOO_MANY_ACTIONS = "TOO_MANY_ACTIONS"


ActionKindEnum = graphene.Enum(
    "ActionKind",
    [(value.upper(), value) for value in Action.Kind.values],
    description="What an action does. Each kind takes its own `config` (see docs/automations.md): "
    + "; ".join(f"{value.upper()}: {label}" for value, label in Action.Kind.choices)
    + ".",
)

ConditionOpEnum = graphene.Enum(
    "ConditionOp",
    [(value.upper(), value) for value, _ in OP_CHOICES],
    description="How a condition compares the metadata value: "
    + "; ".join(f"{value.upper()}: {label}" for value, label in OP_CHOICES)
    + ".",
)


class ActionCondition(graphene.ObjectType):
    """A test on one metadata value of the event; the action runs only when it holds."""

    key = graphene.String(required=True, description="The metadata key, e.g. planTier.")
    op = graphene.Field(ConditionOpEnum, required=True, description="The comparison.")
    value = JSON(description="The value compared with (null for EXISTS and NOT_EXISTS).")


class ActionType(graphene.ObjectType):
    """One step run on every occurrence of a custom event."""

    class Meta:
        name = "Action"

    id = graphene.ID(required=True, description="The action's id.")
    event_slug = graphene.String(required=True, description="The slug of the custom event the action belongs to.")
    kind = graphene.Field(ActionKindEnum, required=True, description="What the action does.")
    position = graphene.Int(required=True, description="Its place in the event's list, from 0; runs in this order.")
    enabled = graphene.Boolean(required=True, description="Disabled actions are kept but do not run.")
    config = JSON(required=True, description="The kind's settings, as stored (validated and normalised).")
    condition = graphene.Field(ActionCondition, description="The condition on the event's metadata, or null.")
    summary = graphene.String(required=True, description="The action in words, e.g. Add tag “vip”.")
    created_at = graphene.DateTime(required=True, description="When the action was created.")
    updated_at = graphene.DateTime(required=True, description="When the action was last changed.")

    @staticmethod
    def from_model(action: Action) -> "ActionType":
        kind_cls = kind_get(action.kind)
        condition = action.condition
        return ActionType(
            id=action.pk,
            event_slug=action.custom_event.slug,
            kind=action.kind,
            position=action.position,
            enabled=action.enabled,
            config=action.config,
            condition=ActionCondition(key=condition["key"], op=condition["op"], value=condition.get("value"))
            if condition
            else None,
            summary=kind_cls.summary(action.config) if kind_cls else action.kind,
            created_at=action.created_at,
            updated_at=action.updated_at,
        )


class ActionConditionInput(graphene.InputObjectType):
    """A condition on one metadata value: the action runs only when it holds."""

    key = graphene.String(required=True, description="The metadata key, e.g. planTier (at most 100 characters).")
    op = graphene.Field(ConditionOpEnum, description="The comparison (default EQUALS).")
    value = JSON(
        description="Text, a number or true/false (at most 500 characters); not needed for EXISTS and NOT_EXISTS."
    )


# ---------------------------------------------------------------------------------------------------------------
# Errors and look-ups


def _api_error(exc: ValidationError) -> ApiError:
    """The first problem of a service's ValidationError, with the code and field an API client can act on."""
    if not hasattr(exc, "error_dict"):
        code = ActionErrorCode.TOO_MANY_ACTIONS if getattr(exc, "code", None) == "too_many_actions" else None
        return ApiError(" ".join(exc.messages), code=code or "INVALID_INPUT")
    key, errors = next(iter(exc.error_dict.items()))
    message = " ".join(m for e in errors for m in e.messages)
    if key == "kind":
        return ApiError(message, code=ActionErrorCode.INVALID_KIND, field="kind")
    if key.startswith("condition_"):
        return ApiError(message, code=ActionErrorCode.INVALID_CONDITION, field="condition." + key[len("condition_") :])
    if key == "__all__":
        code = ActionErrorCode.TOO_MANY_ACTIONS if errors[0].code == "too_many_actions" else "INVALID_INPUT"
        return ApiError(message, code=code)
    return ApiError(
        message, code=ActionErrorCode.INVALID_CONFIG, field="config" if key == "config" else f"config.{key}"
    )


def _event(account, slug: str, field: str = "event_slug"):
    event = custom_event_get(account=account, slug=(slug or "")[:200])
    if event is None:
        raise ApiError(
            f"No custom event with the slug “{(slug or '')[:200]}” in this account.",
            code=ActionErrorCode.UNKNOWN_EVENT,
            field=field,
        )
    return event


def _action(account, action_id) -> Action:
    action = None
    if str(action_id).isdigit() and len(str(action_id)) < 19:
        action = selectors.action_get_by_id(account=account, pk=int(action_id))
    if action is None:
        raise ApiError("No action with this id in this account.", code=ActionErrorCode.ACTION_NOT_FOUND, field="id")
    return action


def _condition(value) -> dict | None:
    if not value:
        return None
    op = value.get("op")
    return {"key": value.get("key"), "op": getattr(op, "value", op) or "equals", "value": value.get("value")}


# ---------------------------------------------------------------------------------------------------------------
# Query and mutations


class AutomationsQuery(graphene.ObjectType):
    actions = graphene.List(
        graphene.NonNull(ActionType),
        required=True,
        event_slug=graphene.String(required=True, description="The custom event's slug."),
        description="The custom event's actions, in the order they run (disabled ones included).",
    )

    def resolve_actions(root, info, event_slug):
        account = account_from_info(info)
        event = _event(account, event_slug)
        return [
            ActionType.from_model(action)
            for action in selectors.action_list(account=account, custom_event=event).select_related("custom_event")
        ]


class CreateActionInput(graphene.InputObjectType):
    """A new action, added at the end of the event's list."""

    event_slug = graphene.String(required=True, description="The slug of the custom event to act on.")
    kind = graphene.Field(ActionKindEnum, required=True, description="What the action does.")
    config = JSON(required=True, description='The kind\'s settings, e.g. {tag: "vip"} for ADD_TAG.')
    condition = graphene.Field(ActionConditionInput, description="Optional: run only when the metadata passes.")
    enabled = graphene.Boolean(description="Whether it runs (default true).")


class CreateAction(graphene.Mutation):
    """Adds an action to a custom event; it runs on the event's next occurrence."""

    class Arguments:
        input = CreateActionInput(required=True, description="The action to add.")

    Output = ActionType

    def mutate(root, info, input):
        account = account_from_info(info)
        event = _event(account, input.get("event_slug"), field="event_slug")
        try:
            action = services.action_create(
                custom_event=event,
                kind=getattr(input.get("kind"), "value", input.get("kind")),
                config=input.get("config"),
                condition=_condition(input.get("condition")),
                enabled=input.get("enabled") is not False,
            )
        except ValidationError as exc:
            raise _api_error(exc) from None
        return ActionType.from_model(action)


class UpdateActionInput(graphene.InputObjectType):
    """Changes to an action; fields left out stay as they are. Its kind cannot change: add another action."""

    id = graphene.ID(required=True, description="The action's id.")
    config = JSON(description="The kind's settings, replacing the current ones.")
    condition = graphene.Field(ActionConditionInput, description="A new condition, replacing the current one.")
    clear_condition = graphene.Boolean(description="True removes the condition: the action then always runs.")
    enabled = graphene.Boolean(description="Enable or disable the action.")
    position = graphene.Int(description="Move it to this place in the list (0 is first; clamped to the list).")


class UpdateAction(graphene.Mutation):
    """Changes an action's settings, condition, enabled flag or position."""

    class Arguments:
        input = UpdateActionInput(required=True, description="The changes.")

    Output = ActionType

    def mutate(root, info, input):
        account = account_from_info(info)
        action = _action(account, input.get("id"))
        if input.get("condition") and input.get("clear_condition"):
            raise ApiError(
                "Give either condition or clear_condition, not both.",
                code=ActionErrorCode.INVALID_CONDITION,
                field="clear_condition",
            )
        fields = {}
        if input.get("config") is not None:
            fields["config"] = input.get("config")
        if input.get("condition") is not None:
            fields["condition"] = _condition(input.get("condition"))
        elif input.get("clear_condition"):
            fields["condition"] = None
        if input.get("enabled") is not None:
            fields["enabled"] = input.get("enabled")
        try:
            if fields:
                services.action_update(action=action, **fields)
            if input.get("position") is not None:
                services.action_move(action=action, position=max(0, min(input.get("position"), 1000)))
        except ValidationError as exc:
            raise _api_error(exc) from None
        action.refresh_from_db()
        return ActionType.from_model(action)


class DeleteAction(graphene.Mutation):
    """Deletes an action and its run history. Effects already applied are not undone."""

    class Arguments:
        id = graphene.ID(required=True, description="The action's id.")

    Output = graphene.Boolean

    def mutate(root, info, id):
        account = account_from_info(info)
        services.action_delete(action=_action(account, id))
        return True


class AutomationsMutation(graphene.ObjectType):
    create_action = CreateAction.Field(description="Adds an action to a custom event.")
    update_action = UpdateAction.Field(description="Changes an action (settings, condition, enabled, position).")
    delete_action = DeleteAction.Field(description="Deletes an action; returns true.")
