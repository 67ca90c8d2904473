"""The GraphQL core every app builds on: the API-key authentication, the one error shape, the JSON scalar.

Errors are GraphQL errors carrying `extensions: {code, field?}`; each app lists its codes in one enum. A resolver
raises `ApiError`; anything else that escapes a resolver is logged and reported as INTERNAL_ERROR, never as a 500
and never with internal details in the message.
"""

import logging

import graphene
from django.core.exceptions import ValidationError
from graphene.types.generic import GenericScalar
from graphql import GraphQLError

from .models import Account

logger = logging.getLogger(__name__)


class CoreErrorCode(graphene.Enum):
    """Error codes shared by every operation."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class ApiError(GraphQLError):
    """A failure reported to the API caller: a message, a code and optionally the input field at fault."""

    def __init__(self, message: str, *, code, field: str | None = None):
        code = getattr(code, "value", code)
        extensions = {"code": code}
        if field:
            extensions["field"] = field
        super().__init__(message, extensions=extensions)
        self.code = code
        self.field = field


def api_error_from_validation(
    exc: ValidationError, *, code="INVALID_INPUT", field_codes: dict | None = None
) -> ApiError:
    """The first message of a Django ValidationError as an ApiError on its field.

    `field_codes` maps a model field to a more specific code (e.g. {"email": "INVALID_EMAIL"}).
    """
    field_codes = field_codes or {}
    if hasattr(exc, "error_dict"):
        field, errors = next(iter(exc.error_dict.items()))
        message = " ".join(m for e in errors for m in e.messages)
        return ApiError(message, code=field_codes.get(field, code), field=None if field == "__all__" else field)
    return ApiError(" ".join(exc.messages), code=code)


def account_from_info(info) -> Account:
    """The account the caller acts for: decided by the API key (or, in GraphiQL, the logged-in user's account)."""
    account = getattr(info.context, "api_account", None)
    if account is None:
        raise ApiError("Authentication required: send 'Authorization: Bearer <api key>'.", code="UNAUTHENTICATED")
    return account


class JSON(GenericScalar):
    """Any JSON value: an object literal inline, or an object through variables."""


class ErrorMaskingMiddleware:
    """Turns unexpected exceptions into INTERNAL_ERROR so that no stack detail reaches the caller."""

    def resolve(self, next_, root, info, **kwargs):
        try:
            return next_(root, info, **kwargs)
        except GraphQLError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the caller as INTERNAL_ERROR
            logger.exception("Unexpected error in GraphQL resolver %s", info.field_name)
            raise ApiError("Internal error: the request could not be completed.", code="INTERNAL_ERROR") from exc
