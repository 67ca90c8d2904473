import json

import pytest

from automations.models import ActionRun
from custom_events.models import MarketingChannel
from tests.factories import ActionFactory, ContactFactory, CustomEventFactory, MarketingSourceFactory
from tests.keys import row_key
from tracking.models import Contact, EventRecord

from .utils import error_of

pytestmark = pytest.mark.django_db

# The spec's example, character for character.
SPEC_EXAMPLE = """mutation {
triggerCustomEvent(input: {
slug: "your-event-slug"
email: "contact@example.com"
})
}"""

TRIGGER = "mutation Trigger($input: TriggerCustomEventInput!) { triggerCustomEvent(input: $input) }"


@pytest.fixture
def event(account):
    return CustomEventFactory(account=account, name="Your Event", slug="your-event-slug", counts_as_conversion=True)


def trigger(gql, **fields):
    return gql(TRIGGER, {"input": {"slug": "your-event-slug", "email": "contact@example.com", **fields}})


def test_the_spec_example_sent_verbatim_records_the_event_and_creates_the_contact(gql, account, event):
    # when
    answer = gql(SPEC_EXAMPLE)

    # then
    assert answer == {"data": {"triggerCustomEvent": True}}
    contact = Contact.objects.get()
    assert (contact.account, contact.email) == (account, "contact@example.com")
    record = EventRecord.objects.get()
    assert (record.account, record.custom_event, record.contact) == (account, event, contact)
    assert record.source == EventRecord.Source.API
    # "The Counts as Conversion flag on the event is still written ... but no specific impression is attributed."
    assert record.is_conversion is True
    assert (record.attributed_impression, record.visitor, record.session) == (None, None, None)


def test_an_existing_contact_is_found_whatever_the_case_of_the_email(gql, account, event):
    contact = ContactFactory(account=account, email="contact@example.com")

    answer = trigger(gql, email="  Contact@EXAMPLE.com ")

    assert answer == {"data": {"triggerCustomEvent": True}}
    assert Contact.objects.count() == 1
    assert EventRecord.objects.get().contact == contact


def test_every_input_field_round_trips_into_the_record(gql, account, event):
    source = MarketingSourceFactory(account=account, name="Partner Newsletter", channel=MarketingChannel.REFERRAL)
    metadata = {"videoTitle": "Product Overview", "percentWatched": 87, "planTier": "enterprise", "tags": ["a", None]}

    answer = trigger(
        gql,
        page_url="https://example.com/pricing?plan=pro",
        utm_source="newsletter",
        utm_medium="email",
        utm_campaign="spring-launch",
        utm_term="analytics",
        utm_content="hero-button",
        marketing_channel="EMAIL_MARKETING",
        marketing_source="partner newsletter",
        metadata=metadata,
        idempotency_key="order-1234",
    )

    assert answer == {"data": {"triggerCustomEvent": True}}
    record = EventRecord.objects.get()
    assert record.page_url == "https://example.com/pricing?plan=pro"
    assert record.utm == {
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "spring-launch",
        "utm_term": "analytics",
        "utm_content": "hero-button",
    }
    # The event's own channel wins over the matched source's (REFERRAL).
    assert record.marketing_channel == "EMAIL_MARKETING"
    assert (record.marketing_source, record.marketing_source_name) == (source, "partner newsletter")
    assert record.metadata == metadata
    assert (record.metadata_dropped, record.metadata_bytes) == (False, len(json.dumps(metadata, separators=(",", ":"))))
    assert row_key(record) == "api:order-1234"
    assert record.contact.email == "contact@example.com"


def test_inline_literals_round_trip_too(gql, event):
    answer = gql(
        """mutation {
          triggerCustomEvent(input: {
            slug: "your-event-slug"
            email: "contact@example.com"
            page_url: "https://example.com/demo"
            marketing_channel: PAID_SOCIAL
            metadata: {videoTitle: "Product Overview", percentWatched: 87, ratio: 0.5, ok: true, none: null,
                       nested: {list: [1, "two"]}}
          })
        }"""
    )

    assert answer == {"data": {"triggerCustomEvent": True}}
    record = EventRecord.objects.get()
    assert (record.page_url, record.marketing_channel) == ("https://example.com/demo", "PAID_SOCIAL")
    assert record.metadata == {
        "videoTitle": "Product Overview",
        "percentWatched": 87,
        "ratio": 0.5,
        "ok": True,
        "none": None,
        "nested": {"list": [1, "two"]},
    }


def test_a_variable_inside_an_inline_metadata_object_is_kept(gql, event):
    answer = gql(
        'mutation($tier: String) { triggerCustomEvent(input: {slug: "your-event-slug", email: "a@example.com", '
        "metadata: {planTier: $tier}}) }",
        {"tier": "enterprise"},
    )

    assert answer == {"data": {"triggerCustomEvent": True}}
    assert EventRecord.objects.get().metadata == {"planTier": "enterprise"}


@pytest.mark.parametrize("channel", MarketingChannel.values)
def test_every_marketing_channel_value_is_accepted(gql, event, channel):
    answer = trigger(gql, marketing_channel=channel)

    assert answer == {"data": {"triggerCustomEvent": True}}
    assert EventRecord.objects.get().marketing_channel == channel


def test_the_marketing_channel_enum_has_exactly_the_spec_values(gql):
    answer = gql('{ __type(name: "MarketingChannel") { enumValues { name description } } }')

    names = [value["name"] for value in answer["data"]["__type"]["enumValues"]]
    assert names == [
        "DIRECT_TRAFFIC",
        "ORGANIC_SEARCH",
        "PAID_SEARCH",
        "ORGANIC_SOCIAL",
        "PAID_SOCIAL",
        "EMAIL_MARKETING",
        "DISPLAY_AD",
        "REFERRAL",
        "VIRTUAL_EVENT",
        "PHYSICAL_EVENT",
        "OUTBOUND_CALL",
        "INBOUND_CALL",
        "DIRECT_MAIL",
        "AFFILIATE",
        "OTHER_CAMPAIGNS",
        "INTERNAL_TRAFFIC",
        "VIDEO_HOSTING_PLATFORM",
        "UNKNOWN",
        "NONE",
    ]
    assert all(value["description"] for value in answer["data"]["__type"]["enumValues"])


def test_the_input_fields_keep_the_specs_snake_case_names(gql):
    answer = gql('{ __type(name: "TriggerCustomEventInput") { inputFields { name type { name kind } } } }')

    fields = {f["name"]: f["type"] for f in answer["data"]["__type"]["inputFields"]}
    assert list(fields) == [
        "slug",
        "email",
        "page_url",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "marketing_channel",
        "marketing_source",
        "metadata",
        "idempotency_key",
        "visitor_id",
    ]
    assert fields["slug"]["kind"] == fields["email"]["kind"] == "NON_NULL"
    assert fields["marketing_channel"]["name"] == "MarketingChannel"
    assert fields["metadata"]["name"] == "JSON"


def test_a_matched_marketing_source_gives_its_channel_when_the_event_names_none(gql, account, event):
    source = MarketingSourceFactory(account=account, name="Trade Show 2026", channel=MarketingChannel.PHYSICAL_EVENT)

    trigger(gql, marketing_source="TRADE SHOW 2026")

    record = EventRecord.objects.get()
    assert (record.marketing_source, record.marketing_channel) == (source, "PHYSICAL_EVENT")


def test_an_unknown_marketing_source_is_recorded_as_given_without_a_match(gql, account, event):
    MarketingSourceFactory(account=account, name="Partner Newsletter")

    answer = trigger(gql, marketing_source="Podcast Sponsorship")

    assert answer == {"data": {"triggerCustomEvent": True}}
    record = EventRecord.objects.get()
    assert (record.marketing_source, record.marketing_source_name, record.marketing_channel) == (
        None,
        "Podcast Sponsorship",
        "",
    )


def test_metadata_of_exactly_4096_bytes_is_accepted(gql, event):
    metadata = {"x": "é" * ((4096 - len('{"x":""}')) // 2)}  # two bytes each in UTF-8: 8 + 4,088 bytes

    answer = trigger(gql, metadata=metadata)

    assert answer == {"data": {"triggerCustomEvent": True}}
    assert EventRecord.objects.get().metadata_bytes == 4096


def _long(n):
    return "x" * n


ERROR_CASES = [
    # (input fields, code, field)
    ({"slug": "no-such-event"}, "UNKNOWN_EVENT", "slug"),
    ({"slug": "Your-Event-Slug"}, "UNKNOWN_EVENT", "slug"),
    ({"slug": "your_event_slug"}, "UNKNOWN_EVENT", "slug"),
    ({"slug": ""}, "INVALID_INPUT", "slug"),
    ({"slug": _long(101)}, "INVALID_INPUT", "slug"),
    ({"email": "not-an-email"}, "INVALID_EMAIL", "email"),
    ({"email": ""}, "INVALID_EMAIL", "email"),
    ({"email": "a@b"}, "INVALID_EMAIL", "email"),
    ({"email": _long(250) + "@example.com"}, "INVALID_EMAIL", "email"),
    ({"metadata": {"x": "a" * 4089}}, "METADATA_TOO_LARGE", "metadata"),
    ({"metadata": {"emoji": "😀" * 1100}}, "METADATA_TOO_LARGE", "metadata"),
    ({"metadata": ["not", "an", "object"]}, "INVALID_INPUT", "metadata"),
    ({"metadata": "a string"}, "INVALID_INPUT", "metadata"),
    ({"metadata": {"bad": "null\u0000char"}}, "INVALID_INPUT", "metadata"),
    ({"page_url": _long(2001)}, "INVALID_INPUT", "page_url"),
    ({"utm_source": _long(201)}, "INVALID_INPUT", "utm_source"),
    ({"utm_medium": _long(201)}, "INVALID_INPUT", "utm_medium"),
    ({"utm_campaign": _long(201)}, "INVALID_INPUT", "utm_campaign"),
    ({"utm_term": _long(201)}, "INVALID_INPUT", "utm_term"),
    ({"utm_content": _long(201)}, "INVALID_INPUT", "utm_content"),
    ({"utm_content": "nul\u0000"}, "INVALID_INPUT", "utm_content"),
    ({"marketing_source": _long(201)}, "INVALID_INPUT", "marketing_source"),
    ({"idempotency_key": ""}, "INVALID_INPUT", "idempotency_key"),
    ({"idempotency_key": _long(151)}, "INVALID_INPUT", "idempotency_key"),
    ({"visitor_id": "has spaces"}, "INVALID_INPUT", "visitor_id"),
    ({"visitor_id": _long(65)}, "INVALID_INPUT", "visitor_id"),
]


@pytest.mark.parametrize(("fields", "code", "field"), ERROR_CASES)
def test_each_error_code_is_produced_by_its_input_and_nothing_is_stored(gql, event, fields, code, field):
    # when
    answer = trigger(gql, **fields)

    # then
    assert answer["data"] is None
    assert error_of(answer) == {"code": code, "field": field}
    assert answer["errors"][0]["path"] == ["triggerCustomEvent"]
    assert (EventRecord.objects.count(), Contact.objects.count()) == (0, 0)


def test_unknown_event_message_says_why_a_malformed_slug_can_never_match(gql, event):
    answer = trigger(gql, slug="Your-Event-Slug")

    assert answer["errors"][0]["message"] == (
        "No custom event with the slug “Your-Event-Slug” in this account. Slugs must be lowercase."
    )


def test_a_deleted_event_is_unknown(gql, event, django_capture_on_commit_callbacks):
    from custom_events.services import custom_event_delete

    trigger(gql)  # caches the definition
    with django_capture_on_commit_callbacks(execute=True):  # and its background delete runs
        custom_event_delete(custom_event=event)

    answer = trigger(gql, email="second@example.com")

    assert error_of(answer) == {"code": "UNKNOWN_EVENT", "field": "slug"}
    assert (EventRecord.objects.count(), Contact.objects.filter(email="second@example.com").count()) == (0, 0)


def test_non_finite_numbers_in_metadata_are_invalid_input(client, api_secret, event):
    # Python's JSON decoder accepts NaN and Infinity; no JSON column can store them.
    body = (
        '{"query": "mutation($m: JSON) { triggerCustomEvent(input: {slug: \\"your-event-slug\\", '
        'email: \\"a@example.com\\", metadata: $m}) }", "variables": {"m": {"x": NaN}}}'
    )

    response = client.post(
        "/graphql/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api_secret}"
    )

    assert response.status_code == 200
    assert error_of(response.json()) == {"code": "INVALID_INPUT", "field": "metadata"}
    assert EventRecord.objects.count() == 0


def test_an_infinite_literal_in_metadata_is_invalid_input(gql, event):
    answer = gql(
        'mutation { triggerCustomEvent(input: {slug: "your-event-slug", email: "a@b.co", metadata: {x: 1e999}}) }'
    )

    assert error_of(answer) == {"code": "INVALID_INPUT", "field": "metadata"}
    assert EventRecord.objects.count() == 0


def test_an_unknown_marketing_channel_is_a_validation_error(gql, event):
    response = gql.post(TRIGGER, {"input": {"slug": "your-event-slug", "email": "a@b.co", "marketing_channel": "TV"}})

    assert response.status_code == 400
    assert error_of(response.json())["code"] == "INVALID_INPUT"
    assert "MarketingChannel" in response.json()["errors"][0]["message"]
    assert EventRecord.objects.count() == 0


def test_a_missing_email_is_a_validation_error(gql, event):
    response = gql.post('mutation { triggerCustomEvent(input: {slug: "your-event-slug"}) }')

    assert response.status_code == 400
    assert error_of(response.json())["code"] == "INVALID_INPUT"
    assert EventRecord.objects.count() == 0


@pytest.mark.parametrize("header", [None, "Bearer pmg_deadbeef_wrong", "Basic dXNlcjpwYXNz"])
def test_without_a_valid_key_the_mutation_is_unauthenticated_and_records_nothing(client, event, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = client.post("/graphql/", json.dumps({"query": SPEC_EXAMPLE}), content_type="application/json", **extra)

    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    assert (EventRecord.objects.count(), Contact.objects.count()) == (0, 0)


def test_one_transaction_a_failure_after_the_contact_is_created_leaves_nothing(gql, event, monkeypatch):
    from tracking import hooks

    # The batch's last write, after its contact and event rows: a failure there leaves none of them.
    def broken_action_runs(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(hooks, "_events_recorded", [broken_action_runs])

    answer = trigger(gql, email="new-person@example.com")

    assert error_of(answer) == {"code": "INTERNAL_ERROR"}
    assert answer["errors"][0]["message"] == "Internal error: the request could not be completed."
    assert (EventRecord.objects.count(), Contact.objects.count()) == (0, 0)


def test_actions_are_created_with_the_record_and_enqueued_only_after_commit(
    gql, account, event, monkeypatch, django_capture_on_commit_callbacks
):
    import automations.services

    action = ActionFactory(custom_event=event)
    ActionFactory(custom_event=event, enabled=False)
    enqueued = []
    monkeypatch.setattr(automations.services, "action_runs_enqueue", lambda *, run_ids: enqueued.extend(run_ids))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        answer = trigger(gql)
        assert enqueued == []  # nothing runs inside the transaction

    assert answer == {"data": {"triggerCustomEvent": True}}
    run = ActionRun.objects.get()
    assert (run.action, run.event_record, run.status) == (action, EventRecord.objects.get(), ActionRun.Status.PENDING)
    assert len(callbacks) == 1
    callbacks[0]()
    assert enqueued == [run.pk]


def test_a_refused_event_enqueues_no_action(gql, event, django_capture_on_commit_callbacks):
    ActionFactory(custom_event=event)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        answer = trigger(gql, email="broken")

    assert error_of(answer)["code"] == "INVALID_EMAIL"
    assert (callbacks, ActionRun.objects.count()) == ([], 0)


@pytest.mark.django_db(transaction=True)
def test_a_definition_deleted_while_cached_elsewhere_is_unknown_not_an_error(gql, account, monkeypatch):
    # Another process still holds the definition in its cache after it was deleted: capture accepts the event under
    # that definition, and the ingester, which records the definition capture found, finds it gone: the caller gets
    # UNKNOWN_EVENT as it would a moment later, and nothing is written.
    import custom_events.cache
    import tracking.capture
    import tracking.ingest

    event = CustomEventFactory(account=account, slug="short-lived")
    stale = CustomEventFactory.build(account=account, slug="short-lived", pk=event.pk)
    event.delete()
    real = custom_events.cache.custom_event_get_cached
    calls = []

    def stale_then_real(*, account, slug):
        calls.append(slug)
        return stale if len(calls) <= 2 else real(account=account, slug=slug)

    monkeypatch.setattr(tracking.capture, "custom_event_get_cached", stale_then_real)
    monkeypatch.setattr(tracking.ingest, "custom_event_get_cached", stale_then_real)

    answer = gql('mutation { triggerCustomEvent(input: {slug: "short-lived", email: "late@example.com"}) }')

    assert error_of(answer) == {"code": "UNKNOWN_EVENT", "field": "slug"}
    assert (EventRecord.objects.count(), Contact.objects.count()) == (0, 0)
    assert calls == ["short-lived"]  # capture's check only: the ingester looks the definition up by its id
