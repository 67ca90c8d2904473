"""The contact pages: a searchable list and a detail page with what the automations did."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    ActionFactory,
    ActionRunFactory,
    ContactFactory,
    CustomEventFactory,
    EventRecordFactory,
    ImpressionFactory,
    SessionFactory,
    VisitorFactory,
)
from tracking.models import ContactList, ContactListMembership, ContactTag

pytestmark = pytest.mark.django_db

LIST = reverse("contacts:list")


def text(response) -> str:
    return response.content.decode()


def listed(body) -> list[str]:
    return re.findall(r'<td><a href="/contacts/\d+/">([^<]+)</a></td>', body)


def test_list_shows_known_contacts_of_the_account_newest_first(client_logged_in, account, other_account):
    now = timezone.now()
    older = ContactFactory(account=account, email="older@example.com", score=12)
    older.created_at = now - timedelta(days=2)
    older.save()
    ContactFactory(account=account, email="newer@example.com")
    ContactFactory(account=account, email=None)
    ContactFactory(account=other_account, email="theirs@example.com")
    ContactTag.objects.create(contact=older, name="vip")

    body = text(client_logged_in.get(LIST))

    assert listed(body) == ["newer@example.com", "older@example.com"]
    assert "2 contacts." in body and '<span class="badge">vip</span>' in body and ">12</td>" in body
    assert "theirs@example.com" not in body


def test_search_by_email_and_include_anonymous(client_logged_in, account):
    ContactFactory(account=account, email="jane@acme.test")
    ContactFactory(account=account, email="john@globex.test")
    anonymous = ContactFactory(account=account, email=None)

    assert listed(text(client_logged_in.get(LIST, {"q": "ACME"}))) == ["jane@acme.test"]
    assert "No contacts match “nobody”" in text(client_logged_in.get(LIST, {"q": "nobody"}))
    with_anonymous = listed(text(client_logged_in.get(LIST, {"anonymous": "on"})))
    assert f"Anonymous visitor #{anonymous.pk}" in with_anonymous and len(with_anonymous) == 3
    assert client_logged_in.get(LIST, {"q": "x" * 300}).status_code == 200  # over the limit: a form error, not a 500


def test_search_escapes_the_query(client_logged_in):
    body = text(client_logged_in.get(LIST, {"q": "<script>alert(1)</script>"}))
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body


def test_list_is_paginated(client_logged_in, account):
    for i in range(51):
        ContactFactory(account=account, email=f"c{i:02d}@example.com")

    first = text(client_logged_in.get(LIST, {"q": "example"}))
    assert len(listed(first)) == 50 and "Page 1 of 2" in first
    assert 'href="?q=example&amp;page=2"' in first
    second = text(client_logged_in.get(LIST, {"q": "example", "page": 2}))
    assert len(listed(second)) == 1
    assert len(listed(text(client_logged_in.get(LIST, {"page": "999"})))) == 1  # past the end: the last page


def test_detail_shows_tags_lists_score_fields_and_the_timeline(client_logged_in, account):
    contact = ContactFactory(account=account, email="jane@example.com", score=42, fields={"plan": "enterprise"})
    ContactTag.objects.create(contact=contact, name="demo")
    ContactListMembership.objects.create(
        contact=contact, contact_list=ContactList.objects.create(account=account, name="Hot leads")
    )
    visitor = VisitorFactory(account=account, contact=contact)
    session = SessionFactory(visitor=visitor)
    now = timezone.now()
    ImpressionFactory(
        session=session, url="https://acme.test/pricing", title="Pricing", occurred_at=now - timedelta(minutes=5)
    )
    event = CustomEventFactory(account=account, name="Requested Demo", slug="requested-demo", counts_as_conversion=True)
    record = EventRecordFactory(
        custom_event=event,
        contact=contact,
        occurred_at=now - timedelta(minutes=4),
        metadata={"note": "<img src=x onerror=alert(1)>"},
        page_url="https://acme.test/demo",
    )
    action = ActionFactory(custom_event=event, kind="add_tag", config={"tag": "demo"})
    ActionRunFactory(action=action, event_record=record, status="succeeded", result="Added tag “demo”")

    response = client_logged_in.get(reverse("contacts:detail", args=[contact.pk]))

    body = text(response)
    assert response.status_code == 200
    assert "<h1>jane@example.com</h1>" in body
    assert '<div class="value" id="contact-score">42</div>' in body
    assert '<span class="badge">demo</span>' in body and '<span class="badge">Hot leads</span>' in body
    assert "<td><code>plan</code></td><td>enterprise</td>" in body
    kinds = re.findall(r'<tr class="timeline-(\w+)">', body)
    assert kinds == ["run", "event", "impression"]
    assert "Pricing" in body and "https://acme.test/pricing" in body
    assert "Requested Demo" in body and "Conversion" in body
    assert "<img src=x" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "Add tag “demo”" in body and "Added tag “demo”" in body
    assert reverse("automations:event_runs", args=[event.pk]) in body


def test_timeline_pages_back_in_time(client_logged_in, account, monkeypatch):
    from automations import selectors

    monkeypatch.setattr(selectors, "TIMELINE_PAGE_SIZE", 2)
    contact = ContactFactory(account=account)
    event = CustomEventFactory(account=account)
    now = timezone.now()
    for minutes in (1, 2, 3):
        EventRecordFactory(
            custom_event=event,
            contact=contact,
            occurred_at=now - timedelta(minutes=minutes),
            page_url=f"https://p/{minutes}",
        )

    page1 = text(client_logged_in.get(reverse("contacts:detail", args=[contact.pk])))
    assert re.findall(r"https://p/(\d)", page1) == ["1", "2"]
    before = re.search(r'href="\?before=([^"]+)"', page1).group(1)
    page2 = client_logged_in.get(reverse("contacts:detail", args=[contact.pk]) + "?before=" + before)
    assert re.findall(r"https://p/(\d)", text(page2)) == ["3"]
    assert (
        client_logged_in.get(reverse("contacts:detail", args=[contact.pk]), {"before": "yesterday"}).status_code == 404
    )


def test_another_accounts_contact_is_404(client_logged_in, other_account):
    foreign = ContactFactory(account=other_account, email="theirs@example.com")
    assert client_logged_in.get(reverse("contacts:detail", args=[foreign.pk])).status_code == 404


def test_login_required(client, account):
    contact = ContactFactory(account=account)
    for path in (LIST, reverse("contacts:detail", args=[contact.pk])):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_nav_links_to_contacts(client_logged_in):
    body = text(client_logged_in.get(LIST))
    assert f'<a href="{LIST}" aria-current="page">Contacts</a>' in body
