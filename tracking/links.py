"""Signed contact links: a link in a marketing email carries `pm_ct=<token>` so that the person who clicks it
becomes that known contact on the website (the beacon sends the token with the landing impression and removes it
from the address bar).

The token names the account and the contact (never the email address, which would leak into logs and analytics)
and is signed with SECRET_KEY, so it cannot be forged or pointed at another contact. It expires after
TRACKING_CONTACT_LINK_MAX_AGE_DAYS (default 180). Anyone holding the link is treated as that contact: the usual
trade-off of tracked email links (a forwarded email identifies the forwardee as the recipient).
"""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core import signing

from paminga.models import Account

from .models import Contact

CONTACT_PARAM = "pm_ct"
_SALT = "tracking.contact-link"


def _signer() -> signing.TimestampSigner:
    # "." cannot occur in the signature or timestamp alphabets, and keeps the token URL-safe without escaping.
    return signing.TimestampSigner(salt=_SALT, sep=".")


def contact_token_make(*, contact: Contact) -> str:
    if contact.is_anonymous:
        raise ValueError("Signed links are for known contacts (with an email address).")
    return _signer().sign(f"{contact.account_id}.{contact.pk}")


def contact_token_read(*, account: Account, token: str) -> int | None:
    """The contact id the token names, when its signature holds, it is not expired and it is this account's."""
    max_age = settings.TRACKING_CONTACT_LINK_MAX_AGE_DAYS * 86400
    try:
        value = _signer().unsign(token, max_age=max_age)
        account_id, contact_id = (int(part) for part in value.split("."))
    except (signing.BadSignature, ValueError):
        return None
    return contact_id if account_id == account.pk else None


def contact_link_make(*, contact: Contact, url: str) -> str:
    """`url` with the contact's token added (other parameters and the fragment kept; an older token replaced)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("The link must be an absolute http(s) URL.")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != CONTACT_PARAM]
    query.append((CONTACT_PARAM, contact_token_make(contact=contact)))
    return urlunsplit(parts._replace(query=urlencode(query)))
