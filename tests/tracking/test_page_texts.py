"""Page URLs, titles and referrers stored once per account (tracking.texts): storing, reading, purging."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from automations import privacy
from automations.retention import retention_run
from tests.factories import (
    ContactFactory,
    EventRecordFactory,
    ImpressionFactory,
    SessionFactory,
    VisitorFactory,
)
from tracking import texts
from tracking.hits import Hit
from tracking.ingest import ingest
from tracking.items import HitItem
from tracking.models import EventRecord, Impression, PageText, Session

pytestmark = pytest.mark.django_db

PRICING = "https://acme.test/pricing"


def visit(account, **fields) -> Session:
    return SessionFactory(account=account, visitor__account=account, landing_url="", **fields)


def page_view(account, visitor_uid: str, n: int, url: str, **fields) -> HitItem:
    hit = Hit(type="impression", id=f"imp-{visitor_uid}-{n}", visitor=visitor_uid, url=url, **fields)
    return HitItem(account_id=account.pk, received_at=timezone.now(), hit=hit)


def test_a_text_is_stored_once_per_account_and_read_back_as_a_string(account, other_account):
    items = [
        page_view(account, "visitor-aaaa", 1, PRICING, title="Pricing", referrer="https://www.google.com/"),
        page_view(account, "visitor-bbbb", 2, PRICING, title="Pricing"),
        page_view(other_account, "visitor-cccc", 3, PRICING, title="Pricing"),
    ]
    assert [o.status for o in ingest(items)] == ["recorded"] * 3

    assert sorted(PageText.objects.filter(account=account).values_list("value", flat=True)) == [
        "Pricing",
        PRICING,
        "https://www.google.com/",
    ]
    assert sorted(PageText.objects.filter(account=other_account).values_list("value", flat=True)) == [
        "Pricing",
        PRICING,
    ]
    first, second = Impression.objects.filter(account=account).order_by("pk")
    assert first.url_text_id == second.url_text_id and first.title_text_id == second.title_text_id
    assert (first.url, first.title, first.referrer) == (PRICING, "Pricing", "https://www.google.com/")
    assert second.referrer == "" and second.referrer_text_id is None
    visit = Session.objects.get(pk=first.session_id)
    assert (visit.landing_url, visit.referrer) == (PRICING, "https://www.google.com/")
    assert visit.landing_url_text_id == first.url_text_id
    stranger = Impression.objects.get(account=other_account)
    assert stranger.url == PRICING and stranger.url_text_id != first.url_text_id


def test_texts_of_any_length_and_script_are_kept_exactly(account):
    long_url = "https://acme.test/" + "é" * 1980  # 2,000 characters, 3,978 bytes: over a B-tree entry's limit
    impression = ImpressionFactory(session=visit(account), url=long_url, title="日本語")
    impression = Impression.objects.get(pk=impression.pk)
    assert (impression.url, impression.title) == (long_url, "日本語")
    assert bytes(impression.url_text.digest) == texts.text_digest(long_url)


def test_a_row_given_a_text_again_refers_to_the_stored_one(account):
    session = SessionFactory(visitor__account=account, account=account, landing_url=PRICING)
    record = EventRecordFactory(account=account, custom_event__account=account, page_url=PRICING)
    impression = ImpressionFactory(session=session, url=PRICING)
    assert session.landing_url_text_id == record.page_url_text_id == impression.url_text_id
    assert PageText.objects.filter(account=account).count() == 1

    record.page_url = ""
    record.save()
    assert EventRecord.objects.get(pk=record.pk).page_url_text_id is None


def test_a_purge_deletes_only_texts_that_no_row_uses(account, other_account):
    kept = ImpressionFactory(session=visit(account), url=PRICING)
    gone = ImpressionFactory(session=visit(account), url="https://acme.test/old")
    stranger = ImpressionFactory(session=visit(other_account), url="https://x.test/")
    Impression.objects.filter(pk=gone.pk).delete()

    assert texts.page_texts_purge(account_id=account.pk) == 1
    assert texts.page_texts_purge(account_id=account.pk) == 0
    assert list(PageText.objects.filter(account=account).values_list("value", flat=True)) == [PRICING]
    assert Impression.objects.get(pk=kept.pk).url == PRICING
    assert Impression.objects.get(pk=stranger.pk).url == "https://x.test/"


def _second_read_then(monkeypatch, then):
    """page_texts_used whose second call (the purge's read after its mark and wait) reads, then runs `then`: what
    a recording or another purge does between that read and the purge's delete."""
    read = texts.page_texts_used
    calls = []

    def patched(*, account_id):
        used = read(account_id=account_id)
        calls.append(account_id)
        if len(calls) == 2:
            then()
        return used

    monkeypatch.setattr(texts, "page_texts_used", patched)


def test_a_text_used_again_while_a_purge_reads_the_tables_is_kept(account, monkeypatch):
    """A recording that looks the text up after the purge marked it, and whose row the purge's read misses."""
    session = visit(account)
    old = ImpressionFactory(session=session, url=PRICING)
    Impression.objects.filter(pk=old.pk).delete()
    added = []
    _second_read_then(monkeypatch, lambda: added.append(ImpressionFactory(session=session, url=PRICING)))

    assert texts.page_texts_purge(account_id=account.pk) == 0
    assert added and Impression.objects.get(pk=added[0].pk).url == PRICING
    assert PageText.objects.get(account=account).purge_mark is None


def test_a_purge_leaves_a_text_another_purge_marked_since(account, monkeypatch):
    """A recording clears the first purge's mark and uses the text; a second purge, which read the rows before that,
    marks it again: the first purge's delete is not for it (the second reads again after its own wait)."""
    session = visit(account)
    old = ImpressionFactory(session=session, url=PRICING)
    Impression.objects.filter(pk=old.pk).delete()

    def record_then_second_purge_marks():
        ImpressionFactory(session=session, url=PRICING)
        PageText.objects.filter(account=account).update(purge_mark=12345)

    _second_read_then(monkeypatch, record_then_second_purge_marks)

    assert texts.page_texts_purge(account_id=account.pk) == 0
    assert PageText.objects.filter(account=account, value=PRICING).exists()


def test_a_text_deleted_by_a_purge_is_stored_again_when_used(account):
    session = visit(account)
    old = ImpressionFactory(session=session, url=PRICING)
    text_id = old.url_text_id
    Impression.objects.filter(pk=old.pk).delete()
    assert texts.page_texts_purge(account_id=account.pk) == 1

    again = ImpressionFactory(session=session, url=PRICING)
    assert again.url_text_id != text_id
    assert Impression.objects.get(pk=again.pk).url == PRICING


def test_a_writer_that_holds_the_texts_keeps_a_purges_marks_off_them(account):
    ImpressionFactory(session=visit(account), url=PRICING)
    PageText.objects.filter(account=account).update(purge_mark=7)
    with transaction.atomic():
        texts.page_texts_hold(account_id=account.pk)
    assert PageText.objects.get(account=account).purge_mark is None


def _person(account, email="ada@example.com"):
    contact = ContactFactory(account=account, email=email)
    visitor = VisitorFactory(account=account, contact=contact)
    session = SessionFactory(visitor=visitor, landing_url=f"https://acme.test/?email={email}")
    ImpressionFactory(session=session, url=f"https://acme.test/?email={email}", title="Welcome")
    EventRecordFactory(account=account, custom_event__account=account, contact=contact, page_url=PRICING)


def test_erasing_a_contact_purges_the_texts_only_it_used(account, django_capture_on_commit_callbacks):
    _person(account)
    other = ImpressionFactory(session=visit(account), url=PRICING, title="Welcome")

    with django_capture_on_commit_callbacks(execute=True):
        result = privacy.contact_erase(account=account, email="ada@example.com", erased_by="test")

    assert sorted(PageText.objects.filter(account=account).values_list("value", flat=True)) == ["Welcome", PRICING]
    other = Impression.objects.get(pk=other.pk)
    assert (other.url, other.title) == (PRICING, "Welcome")
    result.erasure.refresh_from_db()
    assert result.erasure.texts_purged_at is not None


def test_retention_purges_the_texts_of_an_erasure_whose_task_never_ran(account):
    _person(account)
    result = privacy.contact_erase(account=account, email="ada@example.com", erased_by="test")  # no task runs
    assert PageText.objects.filter(account=account, value__contains="ada@example.com").exists()

    run = retention_run(now=timezone.now() + timedelta(minutes=5))

    assert run.deleted["page_texts"] == 3
    assert not PageText.objects.filter(account=account, value__contains="ada@example.com").exists()
    result.erasure.refresh_from_db()
    assert result.erasure.texts_purged_at is not None


def test_retention_purges_an_accounts_texts_at_most_every_purge_interval(account, settings):
    settings.PAGE_TEXTS_PURGE_DAYS = 7
    now = timezone.now() + timedelta(minutes=5)
    retention_run(now=now)  # the first purge of the account
    gone = ImpressionFactory(session=visit(account), url="https://acme.test/old")
    Impression.objects.filter(pk=gone.pk).delete()

    assert retention_run(now=now + timedelta(days=6)).deleted["page_texts"] == 0
    assert PageText.objects.filter(account=account, value="https://acme.test/old").exists()

    assert retention_run(now=now + timedelta(days=8)).deleted["page_texts"] == 1
    assert not PageText.objects.filter(account=account).exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_each_text_into_the_table_and_back(account):
    """tracking 0011: the rows' texts become references (one text per account and value), and reversed, texts."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("tracking")
    before = [("tracking", "0010_account_joins")]
    try:
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        OldSession = old.get_model("tracking", "Session")
        OldImpression = old.get_model("tracking", "Impression")
        visitor = VisitorFactory(account=account)
        at = timezone.now()
        visit = OldSession.objects.create(
            account_id=account.pk, visitor_id=visitor.pk, started_at=at, last_seen_at=at, landing_url=PRICING
        )
        for title in ("Pricing", "Pricing", ""):
            OldImpression.objects.create(
                account_id=account.pk,
                session_id=visit.pk,
                visitor_id=visitor.pk,
                url=PRICING,
                title=title,
                occurred_at=at,
            )

        executor = MigrationExecutor(connection)
        executor.migrate(latest)
        assert sorted(PageText.objects.values_list("value", flat=True)) == ["Pricing", PRICING]
        rows = list(Impression.objects.order_by("pk"))
        assert [(r.url, r.title) for r in rows] == [(PRICING, "Pricing"), (PRICING, "Pricing"), (PRICING, "")]
        assert Session.objects.get(pk=visit.pk).landing_url_text_id == rows[0].url_text_id

        executor = MigrationExecutor(connection)
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        assert list(old.get_model("tracking", "Impression").objects.order_by("pk").values_list("url", "title")) == [
            (PRICING, "Pricing"),
            (PRICING, "Pricing"),
            (PRICING, ""),
        ]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
