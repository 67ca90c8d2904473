"""POST the event as signed JSON to the customer's URL.

Signature: `X-Paminga-Signature: sha256=<hex>` is HMAC-SHA256, keyed with the account's webhook secret, of
`<X-Paminga-Timestamp>.<raw body>`; receivers recompute it and reject old timestamps (docs/automations.md).
`X-Paminga-Delivery` is the run's id, the same on every retry, so a receiver can drop duplicates.

Outcomes: 2xx succeeds; 408, 429, 5xx, timeouts and connection errors are transient (retried with backoff);
other 4xx and redirects (not followed) are permanent.

The URL is resolved once per attempt and the connection goes to the address that was checked, so a host name
cannot be re-pointed at an internal address between the check and the request. Private, loopback and
link-local addresses are refused unless AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE_NETWORKS is set.
"""

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from ..models import Action
from .base import ActionKind, PermanentError, RunContext, Setting, TransientError

USER_AGENT = "Paminga-Webhooks/1.0"
RESPONSE_EXCERPT_BYTES = 300
TRANSIENT_STATUSES = frozenset({408, 425, 429})


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The value of X-Paminga-Signature for a body sent at `timestamp` (unix seconds, as sent in the header)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_payload(ctx: RunContext) -> dict:
    record, contact = ctx.event_record, ctx.contact
    return {
        "delivery_id": ctx.run.pk,
        "event": {
            "slug": ctx.custom_event.slug,
            "name": ctx.custom_event.name,
            "source": record.source,
            "page_url": record.page_url,
            "is_conversion": record.is_conversion,
            "marketing_channel": record.marketing_channel,
            "utm": record.utm,
        },
        "contact": {
            "id": contact.pk,
            "email": contact.email,
            "score": contact.score,
            "fields": contact.fields,
            "tags": list(contact.tags.values_list("name", flat=True)),
        },
        "metadata": record.metadata,
        "metadata_dropped": record.metadata_dropped,
        "time": record.occurred_at.isoformat(),
        "sent_at": timezone.now().isoformat(),
    }


def _resolve(host: str, port: int) -> str:
    """The address to connect to, after checking that it is allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransientError(f"Could not resolve {host}: {exc}") from exc
    addresses = [info[4][0] for info in infos]
    if not getattr(settings, "AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE_NETWORKS", False):
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not ip.is_global or ip.is_multicast:
                raise PermanentError(
                    f"{host} resolves to {address}, a private or local address; webhooks only go to public addresses."
                )
    return addresses[0]


def webhook_post(*, url: str, body: bytes, headers: dict, timeout: float) -> tuple[int, str]:
    """POSTs and returns (status, excerpt of the response body). Raises TransientError on network failures."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    address = _resolve(host, port)
    connection_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
    connection = connection_class(host, port, timeout=timeout)
    # Connect to the checked address; TLS still verifies the certificate against the host name.
    connection._create_connection = lambda _addr, conn_timeout, source=None: socket.create_connection(
        (address, port), conn_timeout, source
    )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = response.read(RESPONSE_EXCERPT_BYTES).decode("utf-8", "replace")
        return response.status, excerpt
    except TimeoutError as exc:
        raise TransientError(f"No answer within {timeout:g} s.") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(f"Connection failed: {exc.__class__.__name__}: {exc}") from exc
    finally:
        connection.close()


class Webhook(ActionKind):
    kind = Action.Kind.WEBHOOK
    label = "Call a webhook"
    description = "POST the event, contact and metadata as signed JSON to your URL."
    transactional = False
    # Waits for identification: the receiving system needs to know who the contact is.
    requires_known_contact = True
    settings = (
        Setting(
            name="url",
            label="URL",
            type="url",
            max_length=2000,
            help_text="An http:// or https:// address that accepts POST requests with a JSON body.",
            placeholder="https://example.com/hooks/paminga",
        ),
        Setting(
            name="timeout",
            label="Timeout (seconds)",
            type="integer",
            required=False,
            min_value=1,
            max_value=30,
            default=10,
            help_text="How long to wait for an answer, 1 to 30 seconds (default 10). A timeout is retried.",
            placeholder="10",
        ),
    )

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"POST to {config.get('url', '')}"

    def run(self, ctx: RunContext) -> str:
        body = json.dumps(webhook_payload(ctx), separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Paminga-Delivery": str(ctx.run.pk),
            "X-Paminga-Event": ctx.custom_event.slug,
            "X-Paminga-Timestamp": timestamp,
            "X-Paminga-Signature": webhook_signature(secret=ctx.account.webhook_secret, timestamp=timestamp, body=body),
        }
        status, excerpt = webhook_post(
            url=self.config["url"], body=body, headers=headers, timeout=self.config.get("timeout", 10)
        )
        summary = f"HTTP {status}" + (f": {excerpt.strip()[:200]}" if excerpt.strip() else "")
        if 200 <= status < 300:
            return f"HTTP {status}"
        if status >= 500 or status in TRANSIENT_STATUSES:
            raise TransientError(summary)
        if 300 <= status < 400:
            raise PermanentError(f"{summary} (redirects are not followed: use the final URL)")
        raise PermanentError(summary)
