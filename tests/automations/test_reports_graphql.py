"""The report figures through GraphQL, against the hand-counted history of reports_fixtures."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from automations.reports.services import report_rollups_update
from paminga.services import api_key_create

from .reports_fixtures import TZ, build_history, build_other_account_history

pytestmark = pytest.mark.django_db

RANGE = 'start: "2026-03-06", end: "2026-03-08"'


@pytest.fixture
def history(account):
    account.time_zone = TZ
    account.save()
    other, other_event = build_other_account_history()
    h = build_history(account=account)
    report_rollups_update(now=timezone.now() + timedelta(minutes=2))
    h.key = api_key_create(account=account, name="reports")[1]
    h.other_key = api_key_create(account=other, name="spy")[1]
    return h


def query(client, key, text, variables=None):
    response = client.post(
        "/graphql/",
        json.dumps({"query": text, "variables": variables or {}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_custom_events_report(client, history):
    body = query(
        client,
        history.key,
        f"""{{ custom_events_report({RANGE}) {{
            start end time_zone
            events {{ slug fires unique_contacts unique_visitors conversions attributed_conversions
                      daily {{ day fires conversions }} }}
            all_events {{ fires unique_contacts unique_visitors conversions }}
        }} }}""",
    )
    report = body["data"]["custom_events_report"]
    assert (report["start"], report["end"], report["time_zone"]) == ("2026-03-06", "2026-03-08", TZ)
    assert report["events"] == [
        {
            "slug": "requested-demo",
            "fires": 4,
            "unique_contacts": 3,
            "unique_visitors": 2,
            "conversions": 4,
            "attributed_conversions": 3,
            "daily": [
                {"day": "2026-03-06", "fires": 1, "conversions": 1},
                {"day": "2026-03-07", "fires": 2, "conversions": 2},
                {"day": "2026-03-08", "fires": 1, "conversions": 1},
            ],
        },
        {
            "slug": "watched-video",
            "fires": 2,
            "unique_contacts": 2,
            "unique_visitors": 2,
            "conversions": 1,
            "attributed_conversions": 1,
            "daily": [
                {"day": "2026-03-06", "fires": 1, "conversions": 0},
                {"day": "2026-03-07", "fires": 0, "conversions": 0},
                {"day": "2026-03-08", "fires": 1, "conversions": 1},
            ],
        },
    ]
    assert report["all_events"] == {"fires": 6, "unique_contacts": 4, "unique_visitors": 3, "conversions": 5}


def test_custom_event_report(client, history):
    body = query(
        client,
        history.key,
        f"""query($key: String!) {{ custom_event_report(slug: "requested-demo", {RANGE}) {{
            figures {{ fires unique_contacts conversions }}
            channels: breakdown(dimension: CHANNEL) {{ value label fires conversions share }}
            pages: breakdown(dimension: PAGE) {{ label fires }}
            attributed_pages {{ label conversions base conversion_rate }}
            attributed_channels {{ value conversions }}
            metadata_keys
            metadata_breakdown(key: $key) {{ value fires conversions }}
            occurrences(metadata_key: $key, metadata_value: "enterprise", first: 2) {{
                id occurred_at contact_email visitor_id source page_url is_conversion metadata metadata_dropped
            }}
        }} }}""",
        {"key": "planTier"},
    )
    assert "errors" not in body
    report = body["data"]["custom_event_report"]
    r = history.records
    assert report["figures"] == {"fires": 4, "unique_contacts": 3, "conversions": 4}
    assert report["channels"] == [
        {"value": "", "label": "(not set)", "fires": 1, "conversions": 1, "share": 0.25},
        {"value": "EMAIL_MARKETING", "label": "Email marketing", "fires": 1, "conversions": 1, "share": 0.25},
        {"value": "ORGANIC_SEARCH", "label": "Organic search", "fires": 1, "conversions": 1, "share": 0.25},
        {"value": "PAID_SEARCH", "label": "Paid search", "fires": 1, "conversions": 1, "share": 0.25},
    ]
    assert report["pages"] == [
        {"label": "https://acme.test/pricing", "fires": 2},
        {"label": "(no page)", "fires": 1},
        {"label": "https://acme.test/demo", "fires": 1},
    ]
    assert report["attributed_pages"] == [
        {"label": "https://acme.test/pricing", "conversions": 2, "base": 4, "conversion_rate": 0.5},
        {"label": "https://acme.test/demo", "conversions": 1, "base": 1, "conversion_rate": 1.0},
    ]
    assert [c["value"] for c in report["attributed_channels"]] == ["DIRECT_TRAFFIC", "ORGANIC_SEARCH", "PAID_SEARCH"]
    assert report["metadata_keys"] == ["planTier", "seats", "trial"]
    assert report["metadata_breakdown"] == [
        {"value": "enterprise", "fires": 3, "conversions": 3},
        {"value": "pro", "fires": 1, "conversions": 1},
    ]
    assert report["occurrences"] == [
        {
            "id": str(r[4].pk),
            "occurred_at": "2026-03-09T03:59:00+00:00",
            "contact_email": None,
            "visitor_id": "uid-v3",
            "source": "beacon",
            "page_url": "https://acme.test/pricing",
            "is_conversion": True,
            "metadata": {"planTier": "enterprise", "trial": True},
            "metadata_dropped": False,
        },
        {
            "id": str(r[3].pk),
            "occurred_at": "2026-03-08T04:59:00+00:00",
            "contact_email": "c2@acme.test",
            "visitor_id": None,
            "source": "api",
            "page_url": "",
            "is_conversion": True,
            "metadata": {"planTier": "enterprise"},
            "metadata_dropped": False,
        },
    ]
    more = query(
        client,
        history.key,
        f"""{{ custom_event_report(slug: "requested-demo", {RANGE}) {{
            occurrences(before_id: "{r[3].pk}") {{ id }} }} }}""",
    )
    assert more["data"]["custom_event_report"]["occurrences"] == [{"id": str(r[2].pk)}, {"id": str(r[1].pk)}]


def test_conversions_report(client, history):
    body = query(
        client,
        history.key,
        f"""{{ conversions_report({RANGE}) {{
            conversions attributed_conversions visits page_views conversion_rate
            daily {{ day conversions attributed_conversions }}
            by_event {{ slug fires conversions attributed_conversions }}
            by_channel {{ value conversions base conversion_rate }}
            by_page {{ value conversions base conversion_rate }}
        }} }}""",
    )
    report = body["data"]["conversions_report"]
    assert (report["conversions"], report["attributed_conversions"], report["visits"], report["page_views"]) == (
        5,
        4,
        6,
        6,
    )
    assert report["conversion_rate"] == pytest.approx(5 / 6)
    assert [d["conversions"] for d in report["daily"]] == [1, 2, 2]
    assert report["by_event"] == [
        {"slug": "requested-demo", "fires": 4, "conversions": 4, "attributed_conversions": 3},
        {"slug": "watched-video", "fires": 2, "conversions": 1, "attributed_conversions": 1},
    ]
    assert [(c["value"], c["conversions"], c["base"]) for c in report["by_channel"]] == [
        ("", 1, 0),
        ("EMAIL_MARKETING", 1, 0),
        ("ORGANIC_SEARCH", 1, 1),
        ("PAID_SEARCH", 1, 3),
        ("REFERRAL", 1, 1),
    ]
    assert report["by_channel"][0]["conversion_rate"] is None
    assert [(p["value"], p["conversions"], p["base"]) for p in report["by_page"]] == [
        ("https://acme.test/pricing", 2, 4),
        ("https://acme.test/demo", 1, 1),
        ("https://acme.test/product", 1, 1),
    ]


def error(body) -> dict:
    assert body["data"] is None or all(v is None for v in body["data"].values())
    return body["errors"][0]["extensions"]


@pytest.mark.parametrize(
    ("text", "code", "field"),
    [
        ('{ custom_event_report(slug: "nope") { figures { fires } } }', "NOT_FOUND", "slug"),
        ('{ custom_events_report(start: "2026-03-09", end: "2026-03-01") { start } }', "INVALID_INPUT", None),
        ('{ conversions_report(start: "2020-01-01", end: "2026-03-01") { visits } }', "INVALID_INPUT", None),
        (
            '{ custom_event_report(slug: "requested-demo") { occurrences(first: 0) { id } } }',
            "INVALID_INPUT",
            "first",
        ),
        (
            '{ custom_event_report(slug: "requested-demo") { occurrences(first: 101) { id } } }',
            "INVALID_INPUT",
            "first",
        ),
        (
            '{ custom_event_report(slug: "requested-demo") { occurrences(metadata_value: "x") { id } } }',
            "INVALID_INPUT",
            "metadata_key",
        ),
        (
            '{ custom_event_report(slug: "requested-demo") { occurrences(before_id: "abc") { id } } }',
            "INVALID_INPUT",
            "before_id",
        ),
        (
            '{ custom_event_report(slug: "requested-demo") { metadata_breakdown(key: "%s") { value } } }' % ("k" * 101),
            "INVALID_INPUT",
            "key",
        ),
    ],
)
def test_bad_input_is_a_clear_error(client, history, text, code, field):
    extensions = error(query(client, history.key, text))
    assert extensions["code"] == code
    assert extensions.get("field") == field


def test_another_accounts_key_sees_only_its_own(client, history):
    body = query(
        client,
        history.other_key,
        f"""{{ custom_events_report({RANGE}) {{ events {{ slug fires unique_contacts }} }}
              conversions_report({RANGE}) {{ conversions visits by_page {{ value conversions base }} }} }}""",
    )
    assert body["data"]["custom_events_report"]["events"] == [
        {"slug": "requested-demo", "fires": 3, "unique_contacts": 1}
    ]
    assert body["data"]["conversions_report"] == {
        "conversions": 3,
        "visits": 1,
        "by_page": [{"value": "https://acme.test/pricing", "conversions": 3, "base": 1}],
    }
    # Acme's event slug is Globex's too: Globex's key reads Globex's event, never Acme's.
    body = query(
        client,
        history.other_key,
        f'{{ custom_event_report(slug: "requested-demo", {RANGE}) {{ metadata_keys figures {{ fires }} }} }}',
    )
    assert body["data"]["custom_event_report"] == {"metadata_keys": ["planTier"], "figures": {"fires": 3}}
    body = query(
        client,
        history.other_key,
        f'{{ custom_event_report(slug: "watched-video", {RANGE}) {{ figures {{ fires }} }} }}',
    )
    assert error(body)["code"] == "NOT_FOUND"


def test_without_a_key_nothing_is_read(client, history):
    response = client.post(
        "/graphql/", json.dumps({"query": "{ conversions_report { visits } }"}), content_type="application/json"
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
