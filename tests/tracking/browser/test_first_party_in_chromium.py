"""The first-party path: a real nginx, standing for the customer's web server, serves the customer's page and
forwards a path of its own origin (/pm/p/) to the app. Chromium loads the script from the page's own origin, fires
events, and they are stored with the right visitor and attribution (docs/tracking.md, "First-party path").

nginx runs as a subprocess of the test, with a generated configuration on free loopback ports. Without nginx the
test skips with the reason, unless REQUIRE_SERVICES=1, when it fails (.ci/run installs nginx).
"""

import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from paminga.services import account_update
from tests.automations.services import require_programs
from tests.factories import AccountFactory, CustomEventFactory
from tracking.models import EventRecord, Impression, RejectedHit, Visitor

from .conftest import DB_LOCK, free_port, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The location block a customer adds to its server (docs/tracking.md shows the same): only the first-party paths are
# forwarded, with the headers the app's origin checks, rate limits and HTTPS detection read.
LOCATION = """
    location /pm/p/ {
        proxy_pass http://127.0.0.1:%(app_port)d/p/;
        proxy_http_version 1.1;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }
"""

CONFIG = """
daemon off;
master_process off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    types { text/html html; }
    server {
        listen 127.0.0.1:%(port)d;
        root %(dir)s/site;
        %(location)s
    }
}
"""


@pytest.fixture(scope="module")
def nginx() -> str:
    """The nginx binary. Asked for first by the tests, so that they skip before a browser or a server starts."""
    (found,) = require_programs("nginx", hint="apt-get install -y nginx")
    return found


@pytest.fixture
def account(db):
    # The customer's site is the nginx origin (127.0.0.1), and strict origin is on: the hits must come with it.
    account = AccountFactory(name="Acme", slug="acme", domains=["127.0.0.1"], strict_origin=True)
    CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)
    return account


@pytest.fixture
def customer_site(nginx, app_server, account, tmp_path):
    """The customer's web server: nginx serving /pricing.html and forwarding /pm/p/ to the app."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "pricing.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Pricing</title>"
        f'<script async src="/pm/p/{account.site_key}.js"></script></head><body><h1>Pricing</h1></body></html>'
    )
    port = free_port()
    location = LOCATION % {"app_port": app_server.port}
    (tmp_path / "nginx.conf").write_text(CONFIG % {"dir": tmp_path, "port": port, "location": location})
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"nginx did not start: {process.stderr.read().decode()}")
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def test_the_page_loads_the_script_from_its_own_origin_and_its_events_are_stored(nginx, page, customer_site, account):
    requests = []
    page.on("request", lambda r: requests.append(r.url))

    page.goto(customer_site + "/pricing.html")
    page.wait_for_function("() => window.$__MA && window.$__MA.loaded")
    page.evaluate("() => $__MA.captureEvent('requested-demo', {metadata: {planTier: 'pro'}})")
    wait_until(lambda: EventRecord.objects.exists(), what="the event")

    # then: the script and every hit went to the page's own origin, under paths no block list matches
    script, *hits = requests[1:]
    assert script == f"{customer_site}/pm/p/{account.site_key}.js"
    assert hits and set(hits) == {f"{customer_site}/pm/p/{account.site_key}/e"}
    for url in requests[1:]:
        assert not any(word in url.lower() for word in ("track", "analytics", "collect", "beacon", "pixel"))
    text = page.evaluate("(u) => fetch(u).then(r => r.text())", script)
    assert not any(word in text.lower() for word in ("track", "analytics", "collect", "beacon", "pixel"))

    # and: stored with the visitor of the page's first-party cookie, the conversion attributed to the page view
    cookie = {c["name"]: c["value"] for c in page.context.cookies()}["__ma_vid"]
    with DB_LOCK:
        visitor = Visitor.objects.get()
        impression = Impression.objects.get()
        event = EventRecord.objects.get()
        assert visitor.uid == cookie
        assert (impression.visitor_id, impression.url) == (visitor.pk, customer_site + "/pricing.html")
        assert (event.visitor_id, event.contact_id) == (visitor.pk, visitor.contact_id)
        assert (event.is_conversion, event.attributed_impression_id) == (True, impression.pk)
        assert event.page_url == customer_site + "/pricing.html" and event.metadata == {"planTier": "pro"}
        assert not RejectedHit.objects.exists()


def post(url: str, origin: str) -> tuple[int, dict]:
    body = b'{"type": "impression", "id": "imp-0000001", "visitor": "visitor-0001", "url": "http://127.0.0.1/"}'
    request = urllib.request.Request(
        url, data=body, headers={"Origin": origin, "Content-Type": "text/plain", "User-Agent": "Mozilla/5.0"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_through_the_proxy_origin_checks_and_retry_after_still_work(nginx, customer_site, account, settings):
    endpoint = f"{customer_site}/pm/p/{account.site_key}/e"

    # a foreign page's hit is refused, and only that refusal carries CORS for it
    status, headers = post(endpoint, "https://evil.test")
    assert status == 403 and headers.get("Access-Control-Allow-Origin") == "https://evil.test"

    # over the site key's limit: 429 with the Retry-After the beacon waits for, through the proxy
    account_update(account=account, strict_origin=False)
    settings.RATE_LIMIT_COLLECT_PER_SITE_KEY = "2/60"
    answers = [post(endpoint, customer_site) for _ in range(3)]
    status, headers = answers[-1]
    assert answers[0][0] == 200 and status == 429 and int(headers["Retry-After"]) > 0
