import pytest

pytestmark = pytest.mark.django_db


def test_noop_view_is_off_unless_enabled(client, settings):
    settings.BENCH_NOOP_VIEW = False
    assert client.post("/bench/noop", "{}", content_type="text/plain").status_code == 404

    settings.BENCH_NOOP_VIEW = True
    response = client.post("/bench/noop", "{}", content_type="text/plain")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_insert_view_is_off_unless_enabled_and_writes_one_row(client, settings, account):
    from tracking.models import RejectedHit

    settings.BENCH_NOOP_VIEW = False
    assert client.post(f"/bench/insert/{account.site_key}", "{}", content_type="text/plain").status_code == 404
    assert not RejectedHit.objects.exists()

    settings.BENCH_NOOP_VIEW = True
    response = client.post(f"/bench/insert/{account.site_key}", "{}", content_type="text/plain")
    assert response.status_code == 200 and RejectedHit.objects.filter(account=account).count() == 1
    assert client.post("/bench/insert/nope", "{}", content_type="text/plain").status_code == 404
