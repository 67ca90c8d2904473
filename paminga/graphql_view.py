"""The /graphql/ endpoint: API-key authentication for programs, GraphiQL for logged-in users."""

import json

from django.http import HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from graphene_django.views import GraphQLView

from .accounts import current_account
from .services import api_key_authenticate


def _unauthenticated(message: str) -> HttpResponse:
    body = {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]}
    response = HttpResponse(json.dumps(body), status=401, content_type="application/json")
    response["WWW-Authenticate"] = 'Bearer realm="paminga"'
    return response


@method_decorator(csrf_exempt, name="dispatch")
class PamingaGraphQLView(GraphQLView):
    """Requests with `Authorization: Bearer <key>` act for the key's account and need no CSRF token (no cookies
    are involved). Requests without it act for the logged-in user's current account (GraphiQL) and must pass the
    CSRF check like any form. Anything else is 401 UNAUTHENTICATED and executes nothing."""

    def dispatch(self, request, *args, **kwargs):
        header = request.headers.get("Authorization", "")
        request.api_account = None
        request.api_key = None
        if header:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                return _unauthenticated("Malformed Authorization header: expected 'Bearer <api key>'.")
            api_key = api_key_authenticate(secret=secret.strip())
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
        else:
            return _unauthenticated("Authentication required: send 'Authorization: Bearer <api key>'.")
        self.graphiql = False  # GraphiQL is enabled once its assets are served from our static files
        return super().dispatch(request, *args, **kwargs)
