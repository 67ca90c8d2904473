import json
from datetime import timedelta

import pytest
from django.utils import timezone

from automations.models import ActionRun
from tests.factories import ActionFactory, ContactFactory, CustomEventFactory
from tests.keys import hit_id, row_key
from tracking.hits import BODY_MAX_BYTES
from tracking.links import contact_token_make
from tracking.models import Contact, EventRecord, Impression, RejectedHit, Session, Visitor

pytestmark = pytest.mark.django_db

MODELS = (Contact, Visitor, Session, Impression, EventRecord, RejectedHit, ActionRun)


def counts() -> dict:
    return {model.__name__: model.objects.count() for model in MODELS}


def post(client, account, body, origin="https://acme.test", site_key=None):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    headers = {"Origin": origin} if origin else {}
    return client.post(
        f"/collect/{site_key or account.site_key}", data=data, content_type="text/plain;charset=UTF-8", headers=headers
    )


def impression(hit_id="imp-0000001", visitor="visitor-0001", url="https://acme.test/", **extra):
    return {"type": "impression", "id": hit_id, "visitor": visitor, "url": url, "title": "Home", **extra}


def event(slug, hit_id="evt-0000001", visitor="visitor-0001", **extra):
    return {
        "type": "event",
        "id": hit_id,
        "visitor": visitor,
        "url": "https://acme.test/pricing",
        "slug": slug,
        **extra,
    }


# --- what a good hit stores -----------------------------------------------------------------------------------


def test_impression_records_visitor_anonymous_contact_visit_and_page_view(client, account):
    url = "https://acme.test/landing?utm_source=newsletter&utm_medium=email&utm_campaign=spring"

    response = post(client, account, impression(url=url, referrer="https://mail.google.com/"))

    assert response.status_code == 200 and response.json() == {"status": "recorded", "id": "imp-0000001"}
    assert counts() == {**dict.fromkeys(counts(), 0), "Contact": 1, "Visitor": 1, "Session": 1, "Impression": 1}
    page_view = Impression.objects.get()
    assert (page_view.url, page_view.title, page_view.referrer, hit_id(page_view)) == (
        url,
        "Home",
        "https://mail.google.com/",
        "imp-0000001",
    )
    assert (page_view.utm_source, page_view.utm_medium, page_view.utm_campaign) == ("newsletter", "email", "spring")
    assert page_view.channel == "EMAIL_MARKETING" == page_view.session.channel
    assert page_view.visitor.uid == "visitor-0001" and page_view.visitor.contact.email is None
    assert page_view.session.landing_url == url and page_view.session.utm_campaign == "spring"


def test_event_records_everything_the_issue_lists(client, account):
    demo = CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)
    post(client, account, impression(url="https://acme.test/?utm_source=ads&utm_medium=cpc&utm_campaign=q1"))

    response = post(client, account, event("requested-demo", metadata={"planTier": "enterprise", "seats": 12}))

    assert response.status_code == 200 and response.json() == {"status": "recorded", "id": "evt-0000001"}
    record = EventRecord.objects.get()
    visitor = Visitor.objects.get()
    assert record.custom_event == demo and record.contact == visitor.contact and record.visitor == visitor
    assert record.session == Session.objects.get() and record.source == "beacon"
    assert record.page_url == "https://acme.test/pricing"
    assert (record.utm_source, record.utm_medium, record.utm_campaign) == ("ads", "cpc", "q1")
    assert record.marketing_channel == "PAID_SEARCH"
    assert record.metadata == {"planTier": "enterprise", "seats": 12} and not record.metadata_dropped
    assert record.is_conversion and record.attributed_impression == Impression.objects.get()
    assert row_key(record) == "beacon:evt-0000001"
    assert abs(record.occurred_at - timezone.now()) < timedelta(seconds=5)
    assert RejectedHit.objects.count() == 0


def test_event_without_a_prior_impression_starts_a_visit_and_attributes_nothing(client, account):
    CustomEventFactory(account=account, slug="requested-demo", counts_as_conversion=True)

    post(client, account, event("requested-demo"))

    record = EventRecord.objects.get()
    assert record.is_conversion and record.attributed_impression is None
    assert Session.objects.count() == 1 and Impression.objects.count() == 0


def test_event_queues_its_actions_in_the_same_transaction(client, account, django_capture_on_commit_callbacks):
    custom_event = CustomEventFactory(account=account, slug="watched-product-video")
    ActionFactory(custom_event=custom_event)

    with django_capture_on_commit_callbacks() as callbacks:
        post(client, account, event("watched-product-video"))

    run = ActionRun.objects.get()
    assert run.event_record == EventRecord.objects.get() and len(callbacks) == 1


def test_metadata_over_4096_bytes_sent_anyway_is_dropped_flagged_and_noted(client, account):
    CustomEventFactory(account=account, slug="watched-product-video")
    metadata = {"notes": "x" * 4100}

    response = post(client, account, event("watched-product-video", metadata=metadata))

    assert response.status_code == 200 and response.json()["status"] == "recorded"
    record = EventRecord.objects.get()
    assert record.metadata is None and record.metadata_dropped and record.metadata_bytes == 4100 + len('{"notes":""}')
    entry = RejectedHit.objects.get()
    assert (entry.reason, entry.recorded, entry.slug) == ("METADATA_DROPPED", True, "watched-product-video")
    assert "4,112 bytes" in entry.message


def test_metadata_of_exactly_4096_bytes_is_kept(client, account):
    CustomEventFactory(account=account, slug="watched-product-video")
    metadata = {"notes": "é" * ((4096 - len('{"notes":""}')) // 2)}
    assert len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode()) == 4096

    post(client, account, event("watched-product-video", metadata=metadata))

    record = EventRecord.objects.get()
    assert record.metadata == metadata and not record.metadata_dropped and record.metadata_bytes == 4096
    assert RejectedHit.objects.count() == 0


def test_metadata_dropped_by_the_beacon_is_flagged_with_its_size(client, account):
    CustomEventFactory(account=account, slug="watched-product-video")

    post(client, account, event("watched-product-video", metadata_dropped=9000))

    record = EventRecord.objects.get()
    assert (record.metadata, record.metadata_dropped, record.metadata_bytes) == (None, True, 9000)
    assert RejectedHit.objects.get().reason == "METADATA_DROPPED"


def test_long_strings_are_truncated_not_refused(client, account):
    url = "https://acme.test/" + "p" * 3000

    response = post(client, account, impression(url=url, title="T" * 900, referrer="https://r.test/" + "r" * 3000))

    assert response.status_code == 200
    page_view = Impression.objects.get()
    assert (len(page_view.url), len(page_view.title), len(page_view.referrer)) == (2000, 500, 2000)


def test_a_retried_hit_is_recorded_once_and_changes_nothing(client, account):
    CustomEventFactory(account=account, slug="requested-demo")
    post(client, account, impression())
    post(client, account, event("requested-demo"))
    before = counts()
    last_seen = Session.objects.get().last_seen_at

    again_event = post(client, account, event("requested-demo", retry=True))
    again_impression = post(client, account, impression(retry=True))

    assert again_event.status_code == again_impression.status_code == 200
    assert again_event.json() == {"status": "duplicate", "id": "evt-0000001"}
    assert again_impression.json() == {"status": "duplicate", "id": "imp-0000001"}
    assert counts() == before and Session.objects.get().last_seen_at == last_seen


def test_a_first_send_reusing_a_hit_id_is_shown_in_the_debugger(client, account):
    CustomEventFactory(account=account, slug="requested-demo")
    post(client, account, event("requested-demo"))

    response = post(client, account, event("requested-demo", visitor="someone-else"))

    assert response.json()["status"] == "duplicate"
    assert EventRecord.objects.count() == 1 and Visitor.objects.count() == 1
    entry = RejectedHit.objects.get()
    assert (entry.reason, entry.slug) == ("DUPLICATE", "requested-demo")


def test_a_late_hit_is_back_dated_by_its_age(client, account):
    post(client, account, impression(age=10 * 60 * 1000))

    assert abs(Impression.objects.get().occurred_at - (timezone.now() - timedelta(minutes=10))) < timedelta(seconds=5)


def test_identify_makes_the_visitor_a_known_contact_with_its_history(client, account):
    CustomEventFactory(account=account, slug="requested-demo")
    post(client, account, impression())
    post(client, account, event("requested-demo"))

    response = post(
        client, account, {"type": "identify", "id": "idn-0000001", "visitor": "visitor-0001", "email": "Ada@Acme.TEST"}
    )

    assert response.status_code == 200 and response.json() == {"status": "identified", "id": "idn-0000001"}
    contact = Contact.objects.get()
    assert contact.email == "ada@acme.test"
    assert EventRecord.objects.get().contact == contact and Visitor.objects.get().contact == contact


def test_contact_link_token_identifies_the_visitor_and_merges_its_anonymous_history(client, account):
    known = ContactFactory(account=account, email="ada@acme.test")
    CustomEventFactory(account=account, slug="requested-demo")
    post(client, account, impression(hit_id="imp-before1"))
    post(client, account, event("requested-demo"))

    post(client, account, impression(hit_id="imp-after01", contact_token=contact_token_make(contact=known)))

    assert list(Contact.objects.all()) == [known]
    assert Visitor.objects.get().contact == known and EventRecord.objects.get().contact == known
    assert Impression.objects.count() == 2 and RejectedHit.objects.count() == 0


@pytest.mark.parametrize("token", ["garbage", "1.2.3.4"])
def test_invalid_contact_token_records_the_impression_and_notes_it(client, account, token):
    response = post(client, account, impression(contact_token=token))

    assert response.status_code == 200
    assert Impression.objects.count() == 1 and Contact.objects.get().email is None
    entry = RejectedHit.objects.get()
    assert (entry.reason, entry.recorded) == ("INVALID_CONTACT_TOKEN", True)


def test_another_accounts_contact_token_does_not_identify(client, account, other_account):
    foreign = ContactFactory(account=other_account, email="ada@globex.test")

    post(client, account, impression(contact_token=contact_token_make(contact=foreign)))

    assert Visitor.objects.get().contact.email is None
    assert RejectedHit.objects.get().reason == "INVALID_CONTACT_TOKEN"


def test_hits_of_two_accounts_stay_apart(client, account, other_account):
    post(client, account, impression())
    post(client, other_account, impression(), origin="https://globex.test")

    assert Visitor.objects.filter(account=account).count() == Visitor.objects.filter(account=other_account).count() == 1
    assert Impression.objects.filter(account=other_account).get().visitor.account == other_account


def test_no_origin_header_is_accepted(client, account):
    # Server-side senders (and the benchmark) send no Origin; only browsers do, and only they are checked.
    assert post(client, account, impression(), origin=None).status_code == 200


# --- bad input: an exact code, a debugger entry, nothing else written ----------------------------------------


def test_unknown_site_key_is_404_and_stores_nothing(client, account):
    response = post(client, account, impression(), site_key="no-such-key")

    assert response.status_code == 404
    assert response.json()["code"] == "UNKNOWN_SITE" and response.json()["message"]
    assert counts() == dict.fromkeys(counts(), 0)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("not json", 400, "MALFORMED"),
        (b"\xff\xfe", 400, "MALFORMED"),
        ("[1, 2]", 400, "MALFORMED"),
        ("", 400, "MALFORMED"),
        ({"type": "pageview", "id": "hit-0000001", "visitor": "visitor-0001"}, 400, "MALFORMED"),
        ({"type": "impression", "id": "short", "visitor": "visitor-0001", "url": "https://a.test/"}, 400, "MALFORMED"),
        (
            {"type": "impression", "id": "hit-0000001", "visitor": "v i s i t o r", "url": "https://a.test/"},
            400,
            "MALFORMED",
        ),
        (
            {"type": "impression", "id": "hit-0000001", "visitor": "visitor-0001", "url": "javascript:alert(1)"},
            400,
            "MALFORMED",
        ),
        ({**impression(), "age": -5}, 400, "MALFORMED"),
        ({**impression(), "age": "5"}, 400, "MALFORMED"),
        ({**impression(), "age": 25 * 3600 * 1000}, 422, "INVALID"),
        (event(""), 400, "MALFORMED"),
        (event(42), 400, "MALFORMED"),
        (event("known", metadata="planTier=enterprise"), 422, "INVALID_METADATA"),
        (event("known", metadata=[1, 2]), 422, "INVALID_METADATA"),
        (event("known", metadata=7), 422, "INVALID_METADATA"),
        (event("known", metadata_dropped="lots"), 400, "MALFORMED"),
        (event("unknown-slug"), 422, "UNKNOWN_EVENT"),
        (event("Known_Slug"), 422, "UNKNOWN_EVENT"),
        (
            {"type": "identify", "id": "hit-0000001", "visitor": "visitor-0001", "email": "not-an-email"},
            422,
            "INVALID_EMAIL",
        ),
        ({"type": "identify", "id": "hit-0000001", "visitor": "visitor-0001"}, 422, "INVALID_EMAIL"),
    ],
)
def test_bad_hit_is_refused_with_its_code_and_noted(client, account, body, status, code):
    CustomEventFactory(account=account, slug="known")
    before = counts()

    response = post(client, account, body)

    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["message"]
    entry = RejectedHit.objects.get()
    assert (entry.account, entry.reason, entry.recorded) == (account, code, False)
    assert counts() == {**before, "RejectedHit": 1}


def test_unknown_slug_message_names_the_slug_and_the_rule_it_breaks(client, account):
    response = post(client, account, event("Watched_Video"))

    message = response.json()["message"]
    assert "“Watched_Video”" in message and "Slugs cannot contain underscores" in message
    assert RejectedHit.objects.get().slug == "Watched_Video"


def test_deleted_event_slug_is_refused(client, account):
    from custom_events.services import custom_event_delete

    custom_event = CustomEventFactory(account=account, slug="requested-demo")
    post(client, account, event("requested-demo", hit_id="evt-first01"))  # caches the definition
    custom_event_delete(custom_event=custom_event)

    response = post(client, account, event("requested-demo", hit_id="evt-second1"))

    assert response.status_code == 422 and response.json()["code"] == "UNKNOWN_EVENT"
    # Only the first hit was recorded (its removal runs in the background, after commit).
    assert [row_key(record) for record in EventRecord.objects.all()] == ["beacon:evt-first01"]


def test_body_over_the_cap_is_413(client, account):
    CustomEventFactory(account=account, slug="known")
    body = json.dumps(event("known", metadata={"blob": "x" * BODY_MAX_BYTES}))

    response = post(client, account, body)

    assert response.status_code == 413 and response.json()["code"] == "TOO_LARGE"
    entry = RejectedHit.objects.get()
    assert entry.reason == "TOO_LARGE" and len(entry.excerpt) == 300
    assert counts() == {**dict.fromkeys(counts(), 0), "RejectedHit": 1}


def test_hit_from_a_foreign_origin_is_refused(client, account):
    response = post(client, account, impression(), origin="https://evil.test")

    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN_ORIGIN"
    # The page may read the refusal (so the beacon stops retrying), nothing else.
    assert response.headers["Access-Control-Allow-Origin"] == "https://evil.test"
    assert counts() == {**dict.fromkeys(counts(), 0), "RejectedHit": 1}


def test_get_is_405_json(client, account):
    response = client.get(f"/collect/{account.site_key}")

    assert response.status_code == 405 and response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert counts() == dict.fromkeys(counts(), 0)


def test_database_failure_is_503_so_the_beacon_retries(client, account, monkeypatch):
    from django.db import OperationalError

    from tracking.ingest import _Batch

    def fail(*args, **kwargs):
        raise OperationalError("connection lost")

    # No queue is configured, so the hit is recorded inline, and the database fails under the ingester.
    monkeypatch.setattr(_Batch, "run", fail)

    response = post(client, account, impression())

    assert response.status_code == 503 and response.json()["code"] == "UNAVAILABLE"
    assert response["Retry-After"] == "5"
    assert counts() == dict.fromkeys(counts(), 0)


def test_nul_characters_and_lone_surrogates_are_made_storable(client, account):
    CustomEventFactory(account=account, slug="known")
    body = (
        '{"type": "event", "id": "evt-0000001", "visitor": "visitor-0001", "url": "https://acme.test/\\ud800x",'
        ' "slug": "known", "metadata": {"note\\u0000": "a\\u0000b", "s": "\\udc00"}}'
    )

    response = post(client, account, body)

    assert response.status_code == 200
    record = EventRecord.objects.get()
    assert record.metadata == {"note": "ab", "s": "?"} and record.page_url == "https://acme.test/?x"


@pytest.mark.parametrize(
    "body",
    [
        '{"type": "event", "id": "evt-0000001", "visitor": "visitor-0001", "slug": "known", "metadata": {"a": NaN}}',
        '{"type": "event", "id": "evt-0000001", "visitor": "visitor-0001", "slug": "known", "metadata": {"a": 1e999}}',
        '{"type": "event", "id": "evt-0000001", "visitor": "visitor-0001", "slug": "known", "metadata": '
        + "[" * 5000
        + "]" * 5000
        + "}",
    ],
)
def test_numbers_json_cannot_carry_and_runaway_nesting_are_malformed(client, account, body):
    CustomEventFactory(account=account, slug="known")

    response = post(client, account, body)

    assert response.status_code == 400 and response.json()["code"] == "MALFORMED"
    assert counts() == {**dict.fromkeys(counts(), 0), "RejectedHit": 1}


# --- what a stranger sends: a clear 4xx or a stored hit, never a 5xx --------------------------------------------


def test_a_dropped_metadata_size_larger_than_any_browser_sends_is_malformed(client, account):
    CustomEventFactory(account=account, slug="known")

    response = post(client, account, event("known", metadata_dropped=2147483648))

    assert response.status_code == 400 and response.json()["code"] == "MALFORMED"
    assert counts() == {**dict.fromkeys(counts(), 0), "RejectedHit": 1}


@pytest.mark.parametrize("field", ["title", "referrer", "metadata"])
def test_raw_surrogate_bytes_are_made_storable(client, account, field):
    CustomEventFactory(account=account, slug="known")
    if field == "metadata":
        body = b'{"type":"event","id":"evt-0000001","visitor":"visitor-0001","url":"https://acme.test/",'
        body += b'"slug":"known","metadata":{"k\xed\xbf\xbf":"v\xed\xbf\xbf"}}'
    else:
        body = b'{"type":"impression","id":"imp-0000001","visitor":"visitor-0001","url":"https://acme.test/",'
        body += b'"%s":"a\xed\xbf\xbfb"}' % field.encode()

    response = post(client, account, body)

    assert response.status_code == 200 and response.json()["status"] == "recorded"
    stored = Impression.objects.get() if field != "metadata" else EventRecord.objects.get()
    value = getattr(stored, field)
    assert "\udfff" not in json.dumps(value, ensure_ascii=False, default=str) and value


def test_a_slug_with_raw_surrogate_bytes_is_an_unknown_event(client, account):
    body = b'{"type":"event","id":"evt-0000001","visitor":"visitor-0001","url":"https://acme.test/","slug":"kn\xed\xbf\xbfown"}'

    response = post(client, account, body)

    assert response.status_code == 422 and response.json()["code"] == "UNKNOWN_EVENT"


def test_a_nul_byte_in_the_site_key_is_an_unknown_site(client, account):
    response = client.post("/collect/abc%00def", "{}", content_type="text/plain")
    script = client.get("/beacon/abc%00def.js")

    assert response.status_code == 404 and response.json()["code"] == "UNKNOWN_SITE"
    assert script.status_code == 404 and script["Content-Type"].startswith("text/javascript")


@pytest.mark.parametrize("suffix", ["/", "/extra"])
def test_anything_after_the_site_key_is_a_json_404(client, account, suffix):
    response = client.post(f"/collect/{account.site_key}{suffix}", "{}", content_type="text/plain")

    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


def test_head_is_405_without_a_body(client, account):
    from django.test import RequestFactory

    from tracking.views import collect

    response = collect(RequestFactory().head(f"/collect/{account.site_key}"), site_key=account.site_key)

    assert response.status_code == 405 and response.content == b"" and response["Allow"] == "POST"
