import pytest

pytestmark = pytest.mark.django_db


def test_noop_view_is_off_unless_enabled(client, settings):
    settings.BENCH_NOOP_VIEW = False
    assert client.post("/bench/noop", "{}", content_type="text/plain").status_code == 404

    settings.BENCH_NOOP_VIEW = True
    response = client.post("/bench/noop", "{}", content_type="text/plain")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_xadd_view_is_off_unless_enabled_and_appends_one_entry(client, settings, account):
    from tests.automations.services import require_services
    from tracking import queue

    settings.BENCH_NOOP_VIEW = False
    assert client.post(f"/bench/xadd/{account.site_key}", "{}", content_type="text/plain").status_code == 404

    settings.BENCH_NOOP_VIEW = True
    settings.INGEST_QUEUE_URL = require_services(redis=True)
    queue.client_reset()
    queue.client().delete("paminga:bench:xadd")
    try:
        response = client.post(f"/bench/xadd/{account.site_key}", "{}", content_type="text/plain")
        assert response.status_code == 200 and queue.client().xlen("paminga:bench:xadd") == 1
        assert client.post("/bench/xadd/nope", "{}", content_type="text/plain").status_code == 404
    finally:
        queue.client().delete("paminga:bench:xadd")
        queue.client_reset()
