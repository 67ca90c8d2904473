"""The Automations area: an event's actions (add, edit, enable/disable, reorder, delete) and its run log."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from automations.models import Action, ActionRun
from tests.factories import ActionFactory, ActionRunFactory, ContactFactory, CustomEventFactory, EventRecordFactory

pytestmark = pytest.mark.django_db


def url(name, *args, **query):
    path = reverse(f"automations:{name}", args=args)
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def text(response) -> str:
    return response.content.decode()


def test_actions_page_lists_the_events_actions_in_order(client_logged_in, event):
    ActionFactory(custom_event=event, kind="change_score", config={"delta": -3}, position=1)
    ActionFactory(
        custom_event=event,
        kind="add_tag",
        config={"tag": "demo"},
        position=0,
        condition={"key": "planTier", "op": "equals", "value": "enterprise"},
    )
    ActionFactory(custom_event=event, kind="webhook", config={"url": "https://h.test/x"}, position=2, enabled=False)
    ActionFactory(custom_event=CustomEventFactory(account=event.account), config={"tag": "other-event"})

    response = client_logged_in.get(url("event_actions", event.pk))

    body = text(response)
    assert response.status_code == 200
    summaries = re.findall(r'<br><span class="muted">([^<]+)</span></td>', body)
    assert summaries == ["Add tag “demo”", "Change score by -3", "POST to https://h.test/x"]
    assert "planTier equals “enterprise”" in body
    assert body.count('<span class="badge yes">Enabled</span>') == 2 and "Disabled</span>" in body
    assert "other-event" not in body
    assert reverse("custom_events:update", args=[event.pk]) in body
    assert '<option value="change_score">Change lead score</option>' in body
    assert body.count("<option value=") == 7


def test_add_an_action(client_logged_in, event):
    page = client_logged_in.get(url("action_create", event.pk, kind="change_score"))
    assert page.status_code == 200 and "Points" in text(page)

    response = client_logged_in.post(
        url("action_create", event.pk, kind="change_score"),
        {
            "delta": "10",
            "condition_key": "planTier",
            "condition_op": "equals",
            "condition_value": "pro",
            "enabled": "on",
        },
    )

    assert response.status_code == 302 and response["Location"] == url("event_actions", event.pk)
    action = Action.objects.get(custom_event=event)
    assert (action.kind, action.config, action.condition, action.enabled, action.position) == (
        "change_score",
        {"delta": 10},
        {"key": "planTier", "op": "equals", "value": "pro"},
        True,
        0,
    )
    assert "Action “Change lead score” added to Requested Demo." in text(client_logged_in.get(response["Location"]))


def test_add_an_action_shows_errors_next_to_the_fields_and_saves_nothing(client_logged_in, event):
    response = client_logged_in.post(
        url("action_create", event.pk, kind="change_score"),
        {"delta": "ten", "condition_key": "seats", "condition_op": "greater_than", "condition_value": "many"},
    )

    body = text(response)
    assert response.status_code == 200
    assert "Points must be a whole number." in body
    assert "“greater_than” needs a number." in body
    assert Action.objects.count() == 0

    response = client_logged_in.post(url("action_create", event.pk, kind="notify_email"), {"to": ""})
    assert "This field is required." in text(response) and Action.objects.count() == 0


def test_unknown_kind_goes_back_to_the_list(client_logged_in, event):
    response = client_logged_in.get(url("action_create", event.pk, kind="nope"))

    assert response.status_code == 302 and response["Location"] == url("event_actions", event.pk)
    assert "Choose the type of action to add." in text(client_logged_in.get(response["Location"]))


def test_edit_an_action(client_logged_in, event):
    action = ActionFactory(
        custom_event=event, kind="notify_email", config={"to": ["a@acme.test", "b@acme.test"], "subject": "Hi"}
    )
    page = text(client_logged_in.get(url("action_update", event.pk, action.pk)))
    assert 'value="a@acme.test, b@acme.test"' in page and 'value="Hi"' in page

    response = client_logged_in.post(url("action_update", event.pk, action.pk), {"to": "c@acme.test", "subject": ""})

    assert response.status_code == 302
    action.refresh_from_db()
    assert (action.config, action.enabled) == ({"to": ["c@acme.test"]}, False)


def test_enable_disable_reorder_and_delete(client_logged_in, event):
    first = ActionFactory(custom_event=event, config={"tag": "one"}, position=0)
    second = ActionFactory(custom_event=event, config={"tag": "two"}, position=1)
    third = ActionFactory(custom_event=event, config={"tag": "three"}, position=2)

    client_logged_in.post(url("action_toggle", event.pk, second.pk))
    second.refresh_from_db()
    assert second.enabled is False
    client_logged_in.post(url("action_toggle", event.pk, second.pk))
    second.refresh_from_db()
    assert second.enabled is True

    client_logged_in.post(url("action_move", event.pk, third.pk), {"direction": "up"})
    assert list(Action.objects.order_by("position").values_list("config__tag", flat=True)) == ["one", "three", "two"]
    client_logged_in.post(url("action_move", event.pk, first.pk), {"direction": "down"})
    assert list(Action.objects.order_by("position").values_list("config__tag", flat=True)) == ["three", "one", "two"]
    client_logged_in.post(url("action_move", event.pk, third.pk), {"direction": "up"})  # already first
    assert list(Action.objects.order_by("position").values_list("position", flat=True)) == [0, 1, 2]

    ActionRunFactory(action=first)
    confirm = text(client_logged_in.get(url("action_delete", event.pk, first.pk)))
    assert "Delete “Add tag “one””?" in confirm
    assert "<strong>1</strong> recorded run from the run log" in confirm
    client_logged_in.post(url("action_delete", event.pk, first.pk))
    assert list(Action.objects.order_by("position").values_list("config__tag", "position")) == [
        ("three", 0),
        ("two", 1),
    ]
    assert ActionRun.objects.count() == 0


def test_the_add_form_is_replaced_at_the_limit(client_logged_in, event):
    for i in range(20):
        ActionFactory(custom_event=event, config={"tag": f"t{i}"}, position=i)

    body = text(client_logged_in.get(url("event_actions", event.pk)))
    assert "This event has 20 actions, the most an event can have." in body
    response = client_logged_in.post(url("action_create", event.pk, kind="add_tag"), {"tag": "one-more"})
    assert "An event can have at most 20 actions." in text(response)
    assert Action.objects.count() == 20


def test_user_input_is_escaped(client_logged_in, event):
    ActionFactory(custom_event=event, config={"tag": "<script>alert(1)</script>"})
    event.name = "<b>Bold</b>"
    event.save()

    body = text(client_logged_in.get(url("event_actions", event.pk)))

    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<b>Bold</b>" not in body


def test_another_accounts_event_and_actions_are_404(client_logged_in, event, other_account):
    foreign_event = CustomEventFactory(account=other_account)
    foreign = ActionFactory(custom_event=foreign_event, config={"tag": "theirs"})
    mine = ActionFactory(custom_event=event, config={"tag": "mine"})
    run = ActionRunFactory(action=foreign, status="failed")

    for name in ("event_actions", "event_runs"):
        assert client_logged_in.get(url(name, foreign_event.pk)).status_code == 404
    assert client_logged_in.get(url("action_create", foreign_event.pk, kind="add_tag")).status_code == 404
    for name in ("action_update", "action_delete", "action_toggle", "action_move"):
        assert client_logged_in.post(url(name, foreign_event.pk, foreign.pk), {"tag": "x"}).status_code == 404
        # Another account's action through one's own event is no better.
        assert client_logged_in.post(url(name, event.pk, foreign.pk), {"tag": "x"}).status_code == 404
    assert client_logged_in.post(url("action_run_retry", foreign_event.pk, run.pk)).status_code == 404
    assert client_logged_in.post(url("action_run_retry", event.pk, run.pk)).status_code == 404

    foreign.refresh_from_db()
    run.refresh_from_db()
    assert (foreign.config, foreign.enabled, run.status) == ({"tag": "theirs"}, True, "failed")
    assert Action.objects.filter(pk__in=[foreign.pk, mine.pk]).count() == 2


def test_login_and_csrf_required(client, user, event):
    action = ActionFactory(custom_event=event)
    for path in (
        url("event_actions", event.pk),
        url("event_runs", event.pk),
        url("action_update", event.pk, action.pk),
    ):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    assert csrf_client.post(url("action_toggle", event.pk, action.pk)).status_code == 403
    assert csrf_client.post(url("action_delete", event.pk, action.pk)).status_code == 403
    assert csrf_client.post(url("action_create", event.pk, kind="add_tag"), {"tag": "x"}).status_code == 403
    assert csrf_client.post(url("webhook_secret_rotate")).status_code == 403
    action.refresh_from_db()
    assert action.enabled and Action.objects.count() == 1


def test_toggle_and_move_only_accept_post(client_logged_in, event):
    action = ActionFactory(custom_event=event)
    assert client_logged_in.get(url("action_toggle", event.pk, action.pk)).status_code == 405
    assert client_logged_in.get(url("action_move", event.pk, action.pk)).status_code == 405
    response = client_logged_in.post(url("action_move", event.pk, action.pk), {"direction": "sideways"})
    assert "Move an action up or down." in text(client_logged_in.get(response["Location"]))


def test_run_log_shows_recent_runs(client_logged_in, event, account):
    known = ContactFactory(account=account, email="jane@example.com")
    anonymous = ContactFactory(account=account, email=None)
    action = ActionFactory(custom_event=event, kind="webhook", config={"url": "https://h.test/x"})
    ActionRunFactory(
        action=action,
        event_record=EventRecordFactory(custom_event=event, contact=known),
        status="failed",
        attempts=5,
        last_error="Gave up after 5 attempts. Last error: HTTP 503: <down>",
        duration_ms=1234,
    )
    ActionRunFactory(
        action=action, event_record=EventRecordFactory(custom_event=event, contact=anonymous), status="waiting"
    )
    ActionRunFactory(action=ActionFactory(custom_event=CustomEventFactory(account=account)), result="other event")

    body = text(client_logged_in.get(url("event_runs", event.pk)))

    assert body.count("data-run-id=") == 2
    assert "POST to https://h.test/x" in body
    assert "jane@example.com" in body and f"Anonymous visitor #{anonymous.pk}" in body
    assert '<span class="badge failed">Failed</span>' in body
    assert '<span class="badge waiting">Waiting for identification</span>' in body
    assert "HTTP 503: &lt;down&gt;" in body and "1234 ms" in body
    assert '<td class="num">5</td>' in body
    assert "other event" not in body
    assert body.count("Run again") == 1


def test_run_log_filters_and_pages(client_logged_in, event, settings, monkeypatch):
    from automations import selectors

    monkeypatch.setattr(selectors, "RUN_LOG_PAGE_SIZE", 2)
    action = ActionFactory(custom_event=event)
    runs = [ActionRunFactory(action=action, status="succeeded") for _ in range(3)]
    failed = ActionRunFactory(action=action, status="failed")

    page1 = text(client_logged_in.get(url("event_runs", event.pk)))
    ids = [int(i) for i in re.findall(r'data-run-id="(\d+)"', page1)]
    assert ids == [failed.pk, runs[2].pk]
    next_link = re.search(r'href="\?before=(\d+)"', page1)
    page2 = text(client_logged_in.get(url("event_runs", event.pk, before=next_link.group(1))))
    assert [int(i) for i in re.findall(r'data-run-id="(\d+)"', page2)] == [runs[1].pk, runs[0].pk]
    assert "Older runs" not in page2

    only_failed = text(client_logged_in.get(url("event_runs", event.pk, status="failed")))
    assert [int(i) for i in re.findall(r'data-run-id="(\d+)"', only_failed)] == [failed.pk]

    for bad in ({"status": "bogus", "before": "x"}, {"before": str(10**30)}, {"before": "-5"}):
        response = client_logged_in.get(url("event_runs", event.pk, **bad))
        assert response.status_code == 200
        assert len(re.findall(r'data-run-id="(\d+)"', text(response))) == 2  # the first page, unfiltered


def test_run_a_failed_run_again(client_logged_in, event, contact, django_capture_on_commit_callbacks):
    action = ActionFactory(custom_event=event, kind="change_score", config={"delta": 2})
    run = ActionRunFactory(
        action=action,
        event_record=EventRecordFactory(custom_event=event, contact=contact),
        status="failed",
        attempts=5,
        last_error="Gave up",
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = client_logged_in.post(url("action_run_retry", event.pk, run.pk))

    assert response.status_code == 302
    run.refresh_from_db()
    contact.refresh_from_db()
    assert (run.status, run.attempts, contact.score) == ("succeeded", 1, 2)
    again = client_logged_in.post(url("action_run_retry", event.pk, run.pk))
    assert "Only failed runs can be run again." in text(client_logged_in.get(again["Location"]))
    contact.refresh_from_db()
    assert contact.score == 2


def test_custom_event_settings_link_to_actions(client_logged_in, event):
    actions_url = url("event_actions", event.pk)
    assert actions_url in text(client_logged_in.get(reverse("custom_events:list")))
    assert actions_url in text(client_logged_in.get(reverse("custom_events:update", args=[event.pk])))


def test_account_settings_show_and_rotate_the_webhook_secret(client_logged_in, account):
    old = account.webhook_secret
    assert old in text(client_logged_in.get(reverse("account_settings")))

    response = client_logged_in.post(url("webhook_secret_rotate"))

    account.refresh_from_db()
    assert response.status_code == 302 and response["Location"] == reverse("account_settings")
    assert account.webhook_secret != old and account.webhook_secret.startswith("whsec_")
    page = text(client_logged_in.get(reverse("account_settings")))
    assert account.webhook_secret in page and old not in page
