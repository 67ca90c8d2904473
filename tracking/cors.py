"""Which browser origins may send beacon hits for an account: the host names in Account.domains.

A domain entry matches a host exactly (`example.com`), or any subdomain when written `*.example.com` (not the bare
`example.com`: list both if both serve pages). An entry with a port (`localhost:8000`) matches that port only;
without one it matches every port. An account with no domains accepts every origin, so a new account works before
its domains are filled in.

The collect endpoint enforces this itself (a hit from another origin is refused and shown in the event debugger);
the CORS headers only decide whether the browser lets the beacon read the answer.
"""

from urllib.parse import urlsplit

from corsheaders.signals import check_request_enabled

from paminga.models import Account


def host_matches(*, host: str, port: int | None, domains: list[str]) -> bool:
    host = (host or "").lower().rstrip(".")
    if not host:
        return False
    for entry in domains:
        name, _, entry_port = entry.partition(":")
        if entry_port and (port is None or str(port) != entry_port):
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]):
                return True
        elif host == name:
            return True
    return False


def url_host_port(url: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(url)
        return parts.hostname or "", parts.port
    except ValueError:
        return "", None


def origin_allowed(*, account: Account, origin: str) -> bool:
    if not account.domains:
        return True
    host, port = url_host_port(origin)
    return host_matches(host=host, port=port, domains=account.domains)


def cors_allow_account_origins(sender, request, **kwargs) -> bool:
    """django-cors-headers asks this for every request to a URL in CORS_URLS_REGEX (the collect endpoint and its
    first-party alias)."""
    from paminga.cache import account_get_by_site_key

    origin = request.headers.get("Origin")
    parts = request.path.split("/")
    # /collect/<site key> and its first-party alias /p/<site key>/e.
    if not origin or len(parts) < 3 or parts[1] not in ("collect", "p"):
        return False
    account = account_get_by_site_key(site_key=parts[2])
    return account is not None and origin_allowed(account=account, origin=origin)


def connect() -> None:
    check_request_enabled.connect(cors_allow_account_origins, dispatch_uid="tracking.cors")
