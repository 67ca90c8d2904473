import json

from django import template
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from paminga.models import Account

register = template.Library()


@register.simple_tag
def beacon_snippet(account: Account, base_url: str = "") -> str:
    """The HTML a customer pastes into every page: the optional queueing stub and the async beacon script. Returned
    as plain text: escape it to show it, mark it safe to embed it."""
    beacon_url = (base_url or settings.SITE_URL).rstrip("/") + reverse("tracking:beacon", args=[account.site_key])
    return render_to_string("tracking/_install_snippet.txt", {"beacon_url": beacon_url}).strip()


@register.filter
def as_json(value) -> str:
    """A JSON value as compact JSON text (escaped by the template like any other text)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


@register.simple_tag
def beacon_privacy(site_key: str) -> dict:
    """The account's privacy settings for the beacon template: {"consent_required", "honour_gpc"}. Read here, from
    the same cached account the view used, so that the beacon view stays as it is."""
    from tracking.cache import account_get_by_site_key

    account = account_get_by_site_key(site_key=site_key)
    return {
        "consent_required": bool(account and account.tracking_consent == Account.Consent.REQUIRED),
        "honour_gpc": bool(account and account.honour_gpc),
    }
