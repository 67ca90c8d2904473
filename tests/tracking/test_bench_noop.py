import pytest

pytestmark = pytest.mark.django_db


def test_noop_view_is_off_unless_enabled(client, settings):
    settings.BENCH_NOOP_VIEW = False
    assert client.post("/bench/noop", "{}", content_type="text/plain").status_code == 404

    settings.BENCH_NOOP_VIEW = True
    response = client.post("/bench/noop", "{}", content_type="text/plain")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
