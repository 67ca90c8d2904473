import io
import re

import pytest
from django.core.management import call_command

from paminga.models import Account

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(db):
    call_command("seed_demo", "--no-history", stdout=io.StringIO())
    return Account.objects.get(slug="demo")


def test_demo_page_installs_the_beacon_and_has_a_button_per_event(client, demo):
    response = client.get("/demo/")

    # The page's scripts carry the request's CSP nonce (tests/paminga/test_safe_defaults.py); the snippet is the same.
    body = re.sub(r' nonce="[^"]+"', "", response.content.decode())
    assert response.status_code == 200
    assert f'<script async src="http://testserver/beacon/{demo.site_key}.js"></script>' in body
    for slug in ("watched-product-video", "visited-pricing-page", "requested-demo", "downloaded-whitepaper-q1"):
        assert f'data-slug="{slug}"' in body
    assert "const maxAttempts = 200; // ~6 seconds at 30ms intervals" in body


def test_demo_pages_and_unknown_page(client, demo):
    assert client.get("/demo/pricing").status_code == 200
    assert client.get("/demo/resources").status_code == 200
    assert client.get("/demo/admin").status_code == 404


def test_demo_without_the_demo_account_is_404(client, account):
    assert client.get("/demo/").status_code == 404


def test_demo_page_lists_what_was_recorded_with_metadata_escaped(client, demo):
    from tests.factories import EventRecordFactory
    from tracking.models import EventRecord

    event = demo.custom_events.get(slug="watched-product-video")
    EventRecordFactory(custom_event=event, metadata={"videoTitle": "<script>alert(1)</script>", "percentWatched": 87})
    EventRecordFactory(custom_event=event, metadata=None)
    assert EventRecord.objects.count() == 2

    body = client.get("/demo/").content.decode()

    assert (
        "{&quot;videoTitle&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;, &quot;percentWatched&quot;: 87}"
        in body
    )
    assert "<script>alert(1)</script>" not in body
