"""Middleware of our own, each a thin layer over a library's."""

from csp.middleware import CSPMiddleware as LibraryCSPMiddleware
from django.conf import settings


class CSPMiddleware(LibraryCSPMiddleware):
    """django-csp's middleware, skipping responses a view exempted (@csp_exempt()) before it builds the policy: the
    library builds both policies for every response, exempt or not, which costs the beacon's endpoints (JSON and a
    script, to which no page policy applies) about a tenth of a hit."""

    def process_response(self, request, response):
        report_only = getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
        if getattr(response, "_csp_exempt", False) and not report_only:
            return response
        return super().process_response(request, response)
