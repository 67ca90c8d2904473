import json

from django import template
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from paminga.models import Account
from paminga.site import site_url

register = template.Library()


@register.simple_tag
def beacon_snippet(
    account: Account,
    base_url: str = "",
    request: HttpRequest | None = None,
    nonce: str = "",
    first_party_url: str = "",
) -> str:
    """The HTML a customer pastes into every page: the optional queueing stub and the async beacon script. Returned
    as plain text: escape it to show it, mark it safe to embed it. The beacon's address is `base_url`, else this
    server's public URL (SITE_URL, else the host `request` came in on). With `nonce` (a page of ours embedding it
    under our Content-Security-Policy), each script carries it.

    With `first_party_url` (e.g. https://www.example.com/pm, a path of the customer's site that its proxy forwards
    to us), the script is loaded from there, under its neutral first-party path, and sends its hits there too."""
    if first_party_url:
        beacon_url = first_party_url.rstrip("/") + reverse("tracking:script_first_party", args=[account.site_key])
    else:
        base_url = base_url or site_url(request=request)
        beacon_url = base_url.rstrip("/") + reverse("tracking:beacon", args=[account.site_key])
    context = {"beacon_url": beacon_url, "first_party": bool(first_party_url)}
    snippet = render_to_string("tracking/_install_snippet.txt", context).strip()
    # str(): django-csp's lazy nonce is falsy until read, and reading it is what puts it in the header.
    nonce = str(nonce) if nonce is not None else ""
    return snippet.replace("<script", f'<script nonce="{nonce}"') if nonce else snippet


@register.filter
def as_json(value) -> str:
    """A JSON value as compact JSON text (escaped by the template like any other text)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
