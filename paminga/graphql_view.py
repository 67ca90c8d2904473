"""The /graphql/ endpoint: API-key authentication for programs, GraphiQL for logged-in users."""

import json
import logging
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponse, HttpResponseBadRequest
from django.middleware.csrf import CsrfViewMiddleware
from graphene_django.settings import graphene_settings
from graphene_django.views import GraphQLView, HttpError
from graphql import (
    ExecutionResult,
    GraphQLError,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    validate,
)
from graphql.language import FieldNode, FragmentSpreadNode, InlineFragmentNode
from graphql.validation import ValidationRule, recommended_rules, specified_rules

from .accounts import current_account
from .graphql_core import CoreErrorCode
from .graphql_limits import MAX_ROOT_FIELDS, QueryComplexityRule
from .ratelimit import client_address, graphql_too_many_requests, limit_setting, rate_limit_hit, rate_limit_reached
from .services import api_key_authenticate

logger = logging.getLogger(__name__)

# Limits on a GraphQL document, checked before any work is done on it: the parser stops at these, and an operation
# selects at most MAX_ROOT_FIELDS fields (aliases included), so one request cannot ask for thousands of resolutions;
# paminga/graphql_limits.py bounds depth, aliases and cost.
MAX_SOURCE_LENGTH = 1_000_000
MAX_LEXICAL_TOKENS = 20_000
# Documents up to this length are parsed and validated once per process and then reused: clients send the same few
# documents (with variables) over and over, and parsing plus validation costs more than executing a small mutation.
CACHED_DOCUMENT_MAX_LENGTH = 10_000


def _unauthenticated(message: str) -> HttpResponse:
    body = {"errors": [{"message": message, "extensions": {"code": CoreErrorCode.UNAUTHENTICATED.value}}]}
    response = HttpResponse(json.dumps(body), status=401, content_type="application/json")
    response["WWW-Authenticate"] = 'Bearer realm="paminga"'
    return response


def _unavailable() -> HttpResponse:
    body = {
        "errors": [
            {
                "message": "The service is unavailable right now (its database cannot be reached); retry shortly.",
                "extensions": {"code": "UNAVAILABLE"},
            }
        ]
    }
    response = HttpResponse(json.dumps(body), status=503, content_type="application/json")
    response["Retry-After"] = "5"
    return response


def _api_key_for(request, secret: str):
    """(api key or None, refusal or None): the key, after the per-address limit on failed authentications; a
    refusal (429 or 503) when the request must stop here."""
    address = client_address(request)
    failures = limit_setting("RATE_LIMIT_API_FAILURES_PER_ADDRESS")
    # Once an address has failed too often, every key is refused from it until the window ends: guessing stops
    # paying even when a guess would be right.
    retry_after = rate_limit_reached(scope="api-failures", subject=address, limit=failures)
    if retry_after is not None:
        return None, graphql_too_many_requests(
            f"Too many failed API key authentications from this address; retry in {retry_after} s.", retry_after
        )
    api_key = api_key_authenticate(secret=secret)
    if api_key is None:
        rate_limit_hit(scope="api-failures", subject=address, limit=failures)
        return None, None
    retry_after = rate_limit_hit(
        scope="api-calls", subject=str(api_key.pk), limit=limit_setting("RATE_LIMIT_API_CALLS_PER_KEY")
    )
    if retry_after is not None:
        return None, graphql_too_many_requests(
            f"Too many requests with this API key; retry in {retry_after} s (send up to 100 events per "
            "triggerCustomEvents call to need fewer requests).",
            retry_after,
        )
    return api_key, None


def _invalid_request(message: str, *, status: int) -> HttpResponse:
    body = {"errors": [{"message": message, "extensions": {"code": CoreErrorCode.INVALID_INPUT.value}}]}
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")


class RootFieldLimitRule(ValidationRule):
    """At most MAX_ROOT_FIELDS root fields per operation, counting aliases and fields reached through fragments."""

    def enter_operation_definition(self, node, *_args):
        if self._count(node.selection_set, set()) > MAX_ROOT_FIELDS:
            self.report_error(
                GraphQLError(
                    f"An operation may select at most {MAX_ROOT_FIELDS} root fields (aliases included); "
                    "use triggerCustomEvents to fire many events in one request.",
                    node,
                    extensions={"code": CoreErrorCode.INVALID_INPUT.value},
                )
            )

    def _count(self, selection_set, seen: set) -> int:
        count = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                count += 1
            elif isinstance(selection, InlineFragmentNode):
                count += self._count(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                fragment = self.context.get_fragment(selection.name.value)
                if fragment is not None:
                    count += self._count(fragment.selection_set, seen | {selection.name.value})
        return count


VALIDATION_RULES = (*specified_rules, *recommended_rules, RootFieldLimitRule, QueryComplexityRule)


def _parse_and_validate(schema, query: str):
    """(document, errors): the parsed document and its validation errors, or (None, [syntax error])."""
    try:
        document = parse(query, max_source_length=MAX_SOURCE_LENGTH, max_lexical_tokens=MAX_LEXICAL_TOKENS)
    except GraphQLError as exc:
        return None, [exc]
    errors = validate(schema, document, VALIDATION_RULES, graphene_settings.MAX_VALIDATION_ERRORS)
    return document, errors


_parse_and_validate_cached = lru_cache(maxsize=256)(_parse_and_validate)


class PamingaGraphQLView(GraphQLView):
    """Requests with `Authorization: Bearer <key>` act for the key's account and need no CSRF token (no cookies
    are involved). Requests without it act for the logged-in user's current account (GraphiQL) and must pass the
    CSRF check like any form. Anything else is 401 UNAUTHENTICATED and executes nothing."""

    @classmethod
    def as_view(cls, **initkwargs):
        # The view makes the CSRF check itself (see dispatch), so the middleware's is skipped. Marked here rather
        # than with method_decorator(csrf_exempt) on dispatch, which decorates the bound method again on every
        # request.
        view = super().as_view(**initkwargs)
        view.csrf_exempt = True
        return view

    def dispatch(self, request, *args, **kwargs):
        try:
            return self._authenticated_dispatch(request, *args, **kwargs)
        except DatabaseError:
            # The key check (or the session) needs the database: while it is down, a coded JSON 503 a client can
            # retry on, not Django's HTML error page. Resolvers' own database errors are answered by the middleware.
            logger.warning("GraphQL request refused: the database is unavailable", exc_info=True)
            return _unavailable()

    def _authenticated_dispatch(self, request, *args, **kwargs):
        header = request.headers.get("Authorization", "")
        request.api_account = None
        request.api_key = None
        if header:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                return _unauthenticated("Malformed Authorization header: expected 'Bearer <api key>'.")
            api_key, refusal = _api_key_for(request, secret.strip())
            if refusal is not None:
                return refusal
            if api_key is None:
                return _unauthenticated("Invalid or revoked API key.")
            request.api_key = api_key
            request.api_account = api_key.account
        elif request.user.is_authenticated and current_account(request) is not None:
            if request.method == "POST":
                reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
                if reason is not None:
                    return reason
            request.api_account = current_account(request)
        elif request.method == "GET" and self.request_wants_html(request):
            # A person opening /graphql/ in a browser: GraphiQL is for logged-in users.
            return redirect_to_login(request.get_full_path())
        else:
            return _unauthenticated("Authentication required: send 'Authorization: Bearer <api key>'.")
        # GraphiQL (served from our own static files) for people in a browser; programs always get JSON.
        self.graphiql = request.api_key is None
        # graphene-django's dispatch sets a CSRF cookie on every answer, for GraphiQL's forms. A program with an API
        # key has no use for it: its requests skip that wrapper (and the Set-Cookie and Vary headers it adds).
        dispatch = super().dispatch if request.api_key is None else GraphQLView.dispatch.__wrapped__.__get__(self)
        request.retry_after = None
        try:
            response = dispatch(request, *args, **kwargs)
        except RecursionError:
            # JSON nested deeper than the interpreter can decode: a malformed request, not a server error.
            return _invalid_request("The request body is nested too deeply.", status=400)
        except RequestDataTooBig:
            return _invalid_request(
                f"The request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; send fewer events per "
                "request.",
                status=413,
            )
        if request.retry_after is not None:
            # Capture could neither queue nor record the events (tracking.capture.Unavailable): an HTTP client or a
            # proxy then knows to retry, and when.
            response.status_code = 503
            response["Retry-After"] = str(request.retry_after)
        return response

    @staticmethod
    def format_error(error):
        """Every error carries `extensions.code`: request-level problems (malformed JSON, syntax and validation
        errors) are INVALID_INPUT; resolvers' errors bring their own code."""
        if not isinstance(error, GraphQLError):
            return {"message": str(error), "extensions": {"code": CoreErrorCode.INVALID_INPUT.value}}
        formatted = error.formatted
        if not (formatted.get("extensions") or {}).get("code"):
            code = (CoreErrorCode.INTERNAL_ERROR if formatted.get("path") else CoreErrorCode.INVALID_INPUT).value
            formatted["extensions"] = {**(formatted.get("extensions") or {}), "code": code}
        return formatted

    def parse_body(self, request):
        body = request.body  # over DATA_UPLOAD_MAX_MEMORY_SIZE, RequestDataTooBig: answered 413 by dispatch()
        data = super().parse_body(request)
        # "\uD800"-style escapes decode to unpaired surrogates, which no database column can store. Checked only when
        # the body has such an escape (valid pairs, as for emoji, pass).
        if b"\\u" in body and (b"\\ud" in body.lower()):
            try:
                json.dumps(data, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise HttpError(
                    HttpResponseBadRequest("The request contains invalid Unicode (an unpaired surrogate).")
                ) from None
        return data

    def execute_graphql_request(self, request, data, query, variables, operation_name, show_graphiql=False):
        # graphene-django's own, with parser limits, our validation rules and a per-process cache of parsed and
        # validated documents.
        if not query:
            if show_graphiql:
                return None
            raise HttpError(HttpResponseBadRequest("Must provide query string."))
        if not isinstance(query, str):
            raise HttpError(HttpResponseBadRequest("The query must be a string."))
        if variables is not None and not isinstance(variables, dict):
            raise HttpError(HttpResponseBadRequest("Variables must be a JSON object."))
        if operation_name is not None and not isinstance(operation_name, str):
            raise HttpError(HttpResponseBadRequest("operationName must be a string."))

        schema = self.schema.graphql_schema
        if len(query) <= CACHED_DOCUMENT_MAX_LENGTH:
            document, errors = _parse_and_validate_cached(schema, query)
        else:
            document, errors = _parse_and_validate(schema, query)
        if document is None:
            return ExecutionResult(data=None, errors=errors)

        operation_ast = get_operation_ast(document, operation_name)
        is_query = operation_ast is None or operation_ast.operation == OperationType.QUERY
        if request.method.lower() == "get" and not is_query:
            if show_graphiql:
                return None
            raise HttpError(
                HttpResponse(
                    status=405,
                    content=f"Can only perform a {operation_ast.operation.value} operation from a POST request.",
                )
            )
        if errors:
            return ExecutionResult(data=None, errors=errors)
        try:
            return execute(
                schema,
                document,
                root_value=self.get_root_value(request),
                context_value=self.get_context(request),
                variable_values=variables,
                operation_name=operation_name,
                middleware=self.get_middleware(request),
            )
        except Exception:  # noqa: BLE001 - resolvers' errors are masked by ErrorMaskingMiddleware; this is the rest
            logger.exception("Unexpected error executing a GraphQL request")
            error = GraphQLError(
                "Internal error: the request could not be completed.",
                extensions={"code": CoreErrorCode.INTERNAL_ERROR.value},
            )
            return ExecutionResult(errors=[error])
