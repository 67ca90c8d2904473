"""The GraphQL core every app builds on: the API-key authentication, the one error shape, the JSON scalar.

Errors are GraphQL errors carrying `extensions: {code, field?}`; each app lists its codes in one enum. A resolver
raises `ApiError`; anything else that escapes a resolver is logged and reported as INTERNAL_ERROR, never as a 500
and never with internal details in the message.
"""

import logging

import graphene
from django.core.exceptions import ValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from graphene.types.generic import GenericScalar
from graphql import GraphQLError, value_from_ast_untyped

from .models import Account

logger = logging.getLogger(__name__)


class CoreErrorCode(graphene.Enum):
    """Error codes shared by every operation."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # Refused before execution: deeper, more aliased or costlier than the limits (paminga/graphql_limits.py).
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    # A report query ran past REPORT_STATEMENT_TIMEOUT_MS and was cancelled.
    TIMEOUT = "TIMEOUT"
    # HTTP 429: over a rate limit; Retry-After says when to retry.
    RATE_LIMITED = "RATE_LIMITED"
    # HTTP 503 (or a field error): the database cannot be reached; retry shortly.
    UNAVAILABLE = "UNAVAILABLE"


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
    exc: ValidationError,
    *,
    code=CoreErrorCode.INVALID_INPUT,
    field_codes: dict | None = None,
    error_codes: dict | None = None,
    name_fields: bool = False,
) -> ApiError:
    """A Django ValidationError as one ApiError on its (first) field.

    `field_codes` maps a model field to a more specific code (e.g. {"email": "INVALID_EMAIL"}); `error_codes` maps a
    ValidationError code (e.g. "unknown_event") to one. With `name_fields`, every field's first message is reported,
    prefixed with its field name ("slug: Slugs must be lowercase.; name: This field cannot be blank.").
    """
    field_codes = field_codes or {}
    error_codes = error_codes or {}
    if hasattr(exc, "error_dict"):
        items = list(exc.error_dict.items())
        field, errors = items[0]
        api_code = error_codes.get(errors[0].code) or field_codes.get(field, code)
        if name_fields:
            # The first message of each field: a field's later messages repeat it in other words.
            message = "; ".join(
                f"{name}: {errs[0].messages[0]}" if name != "__all__" else errs[0].messages[0] for name, errs in items
            )
        else:
            message = " ".join(m for e in errors for m in e.messages)
        return ApiError(message, code=api_code, field=None if field == "__all__" else field)
    api_code = error_codes.get(exc.error_list[0].code, code) if exc.error_list else code
    return ApiError(" ".join(exc.messages), code=api_code)


def account_from_info(info) -> Account:
    """The account the caller acts for: decided by the API key (or, in GraphiQL, the logged-in user's account)."""
    account = getattr(info.context, "api_account", None)
    if account is None:
        raise ApiError(
            "Authentication required: send 'Authorization: Bearer <api key>'.", code=CoreErrorCode.UNAUTHENTICATED
        )
    return account


class JSON(GenericScalar):
    """Any JSON value: an object literal inline, or an object through variables."""

    @staticmethod
    def parse_literal(ast, _variables=None):
        # Unlike GenericScalar's own, this keeps variables used inside a literal ({tier: $tier}), null and
        # enum-like bare words (as strings) instead of turning them into None.
        return value_from_ast_untyped(ast, _variables)


def _null_character_argument(kwargs: dict) -> str | None:
    for name, value in kwargs.items():
        if isinstance(value, str) and "\x00" in value:
            return name
    return None


def _database_error(exc: Exception) -> ApiError | None:
    """A coded error for the database failures a caller can act on: a cancelled statement (the report statement
    timeout), or a database that cannot be reached."""
    cause = exc.__cause__
    if isinstance(exc, DatabaseError) and getattr(cause, "sqlstate", None) == "57014":  # query_canceled
        return ApiError(
            "The report took too long and was stopped; ask for a shorter range or fewer report fields.",
            code=CoreErrorCode.TIMEOUT,
        )
    if isinstance(exc, OperationalError | InterfaceError) and getattr(cause, "sqlstate", None) is None:
        # No SQLSTATE: the server never answered (connection refused or lost).
        return ApiError("The database is unavailable right now; retry shortly.", code=CoreErrorCode.UNAVAILABLE)
    return None


class ErrorMaskingMiddleware:
    """Turns unexpected exceptions into INTERNAL_ERROR so that no stack detail reaches the caller; refuses string
    arguments with a null character, which no column stores (PostgreSQL refuses them as query parameters)."""

    def resolve(self, next_, root, info, **kwargs):
        # Only plain string arguments (slugs, keys): the fields of input objects are validated by their services,
        # which name the field at fault.
        if kwargs and (name := _null_character_argument(kwargs)) is not None:
            raise ApiError(f"{name} cannot contain null characters.", code=CoreErrorCode.INVALID_INPUT, field=name)
        try:
            return next_(root, info, **kwargs)
        except GraphQLError:
            raise
        except DatabaseError as exc:
            coded = _database_error(exc)
            if coded is None:
                logger.exception("Unexpected database error in GraphQL resolver %s", info.field_name)
                coded = ApiError("Internal error: the request could not be completed.", code="INTERNAL_ERROR")
            else:
                logger.warning("GraphQL resolver %s: %s", info.field_name, coded.message)
            raise coded from exc
        except Exception as exc:  # noqa: BLE001 - reported to the caller as INTERNAL_ERROR
            logger.exception("Unexpected error in GraphQL resolver %s", info.field_name)
            raise ApiError(
                "Internal error: the request could not be completed.", code=CoreErrorCode.INTERNAL_ERROR
            ) from exc
