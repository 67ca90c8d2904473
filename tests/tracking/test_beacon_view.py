import gzip

import pytest

from tracking.models import Contact, RejectedHit, Visitor

pytestmark = pytest.mark.django_db


def test_beacon_is_cacheable_javascript_with_a_header_comment(client, account):
    response = client.get(f"/beacon/{account.site_key}.js")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert "public" in response["Cache-Control"] and "max-age=3600" in response["Cache-Control"]
    body = response.content.decode()
    assert body.startswith(f"/* Paminga tracking beacon, site {account.site_key}.")
    assert f"http://testserver/collect/{account.site_key}" in body
    assert "captureEvent" in body and "identify" in body and "sendBeacon" in body
    # Template comments explain the code in the source and are not sent.
    assert "{#" not in body and "{%" not in body and "comment" not in body.split("*/", 1)[1].lower()


def test_beacon_answers_304_to_a_matching_etag(client, account):
    first = client.get(f"/beacon/{account.site_key}.js")

    again = client.get(f"/beacon/{account.site_key}.js", headers={"If-None-Match": first["ETag"]})

    assert again.status_code == 304 and again.content == b""


def test_beacon_is_gzipped_and_under_3_5_kb(client, account):
    response = client.get(f"/beacon/{account.site_key}.js", headers={"Accept-Encoding": "gzip"})

    assert response["Content-Encoding"] == "gzip"
    # 2.7 KB before consent and Global Privacy Control, which cost about 450 bytes compressed.
    assert len(response.content) < 3.5 * 1024
    assert gzip.decompress(response.content).decode().startswith("/* Paminga tracking beacon")


def test_unknown_site_key_is_404_javascript_and_stores_nothing(client, account):
    response = client.get("/beacon/no-such-key.js")

    assert response.status_code == 404 and response["Content-Type"].startswith("text/javascript")
    assert "unknown site key" in response.content.decode()
    assert Visitor.objects.count() == Contact.objects.count() == RejectedHit.objects.count() == 0


def test_account_settings_show_the_install_snippet(client_logged_in, account, settings):
    settings.SITE_URL = "https://paminga.example.org"

    body = client_logged_in.get("/settings/account/").content.decode()

    assert f"&lt;script async src=&quot;https://paminga.example.org/beacon/{account.site_key}.js&quot;" in body
    assert "window.$__MA = window.$__MA || { q: []," in body
    assert "/settings/account/event-debugger/" in body and "pm_ct" in body
