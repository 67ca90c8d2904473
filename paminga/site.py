"""The public base URL of this server, for links that leave the page: the beacon snippet, printed and emailed links.

The host a request came in on is the truth: `make run PORT=8101` serves on 8101, and a snippet copied from that
server must point at 8101. `SITE_URL` overrides it when set, for a server behind a proxy that rewrites the host or
for links made outside a request (a notification email sent by the worker).
"""

from django.conf import settings
from django.http import HttpRequest

# Outside a request with no SITE_URL: where `make run` serves by default.
DEVELOPMENT_URL = "http://127.0.0.1:8000"


def site_url(*, request: HttpRequest | None = None) -> str:
    """`scheme://host[:port]` without a trailing slash: SITE_URL when set, else the request's own, else the default."""
    if settings.SITE_URL:
        return settings.SITE_URL.rstrip("/")
    if request is not None:
        return f"{request.scheme}://{request.get_host()}"
    return DEVELOPMENT_URL
