"""Page texts (URLs, titles, referrers): each stored once per account, as a PageText that rows refer to.

Storing: a row is given its texts as strings (`Impression(url=...)`); when it is saved, bulk-created or inserted by
tracking.rows, page_texts_store looks the batch's texts up by digest, one query, and inserts those the account does
not hold yet.

Purging: once no row uses a text it should go, since erasure and retention promise that what they remove is gone
(a URL may hold an address or a campaign's id). Finding that no row uses a text means reading the tables, which may
take seconds, and meanwhile a recording may start to use it again. So a purge marks its candidates first, with a
number of its own (`purge_mark`); waits for every recording that looked texts up before the mark to commit (an
advisory lock of the account that each recording holds shared from its look-up to its commit, taken here exclusively
for a moment); then reads which candidates rows use, and deletes the rest that still carry its mark. A recording
that finds a text marked clears the mark, which the purge's DELETE then sees (or, if the DELETE came first, finds
the text gone and stores it again); a second purge that marks the text over the first's leaves it to the second,
which reads the rows again after its own wait. Recordings never wait on a purge's reading, only on that moment.

SQLite has no advisory locks; it runs one writing transaction at a time, and that is what the product runs on it
(tasks in-process, one server process).
"""

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, TextField, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import EventRecord, Impression, PageText, PageTextPurge, Session

DIGEST_BYTES = 16
# The first key of the advisory lock of an account's texts (the second is the account): a constant nothing else uses.
LOCK_CLASS = 0x7478_7401
TEXT_MODELS = (Impression, Session, EventRecord)
PURGE_BATCH = 5000


def text_digest(value: str) -> bytes:
    """The key a text is unique by within its account: the first 16 bytes of its SHA-256."""
    return hashlib.sha256(value.encode()).digest()[:DIGEST_BYTES]


def _key(account_id: int) -> int:
    return account_id & 0x7FFF_FFFF  # advisory locks' keys are 4-byte integers: a clash only makes one wait


def _lock(account_ids: Iterable[int], *, exclusive: bool) -> None:
    """Until the transaction ends: the accounts' texts barrier, shared (a recording) or exclusive (a purge)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for account_id in sorted(set(account_ids)):
                cursor.execute(
                    f"SELECT pg_advisory_xact_lock{'' if exclusive else '_shared'}(%s, %s)",
                    [LOCK_CLASS, _key(account_id)],
                )


def page_texts_hold(*, account_id: int) -> None:
    """For a writer that reuses the account's texts by their ids without looking each up (the demo generator): until
    its transaction ends, no purge deletes any of them."""
    _lock([account_id], exclusive=False)
    PageText.objects.filter(account_id=account_id, purge_mark__isnull=False).update(purge_mark=None)


def _texts_find(keys: Iterable[tuple[int, bytes]]) -> dict[tuple[int, bytes], tuple[int, int | None]]:
    """{(account id, digest): (text id, purge mark)} of the stored texts among `keys`."""
    by_account = defaultdict(list)
    for account_id, digest in keys:
        by_account[account_id].append(digest)
    found = {}
    for account_id, digests in by_account.items():
        rows = PageText.objects.filter(account_id=account_id, digest__in=digests).values_list(
            "digest", "pk", "purge_mark"
        )
        for digest, pk, mark in rows:
            found[(account_id, bytes(digest))] = (pk, mark)
    return found


def page_texts_store(objs: Iterable) -> None:
    """Sets the text references of unsaved rows (of models with TEXTS) from the strings they were given, storing the
    texts the account does not hold yet. Runs inside the transaction that inserts the rows."""
    wanted: dict[tuple[int, bytes], str] = {}
    todo = []
    for obj in objs:
        for reference in obj.TEXTS.values():
            value = obj.__dict__.pop("_text_" + reference, None)
            if value is None:
                continue
            attname = reference + "_id"
            if not value:
                setattr(obj, attname, None)
                continue
            key = (obj.account_id, text_digest(value))
            wanted[key] = value
            todo.append((obj, reference, attname, key, value))
    if not wanted:
        return
    _lock({account_id for account_id, _digest in wanted}, exclusive=False)
    found = _texts_find(wanted)
    marked = [pk for pk, mark in found.values() if mark is not None]
    if marked:
        # Used again while a purge considers it: the mark goes, and the purge keeps it. A text the purge deleted
        # meanwhile is stored again below.
        PageText.objects.filter(pk__in=marked).update(purge_mark=None)
        kept = set(PageText.objects.filter(pk__in=marked).values_list("pk", flat=True))
        found = {key: (pk, mark) for key, (pk, mark) in found.items() if mark is None or pk in kept}
    missing = [key for key in wanted if key not in found]
    if missing:
        PageText.objects.bulk_create(
            [
                PageText(account_id=account_id, digest=digest, value=wanted[(account_id, digest)])
                for account_id, digest in missing
            ],
            ignore_conflicts=True,
        )
        found.update(_texts_find(missing))
    for obj, reference, attname, key, value in todo:
        pk = found[key][0]
        # A plain id (no PageText is built for a row), and the text the row's property reads with no query.
        obj.__dict__[attname] = pk
        obj.__dict__["_known_" + reference] = (pk, value)
        obj._state.fields_cache.pop(reference, None)


def _references(model) -> list[str]:
    return [reference + "_id" for reference in model.TEXTS.values()]


def page_texts_used(*, account_id: int) -> set[int]:
    """The ids of the account's texts that some row refers to (reads every row of the account)."""
    used = set()
    for model in TEXT_MODELS:
        rows = model.objects.filter(account_id=account_id).order_by()
        for column in _references(model):
            used.update(rows.filter(**{f"{column}__isnull": False}).values_list(column, flat=True).distinct())
    return used


def page_texts_purge(*, account_id: int) -> int:
    """Deletes the account's texts that no row uses. Returns how many went. Safe beside recordings and other purges
    (see the module's docstring), and to run again; reads every row of the account twice, so the periodic purges
    run at most every settings.PAGE_TEXTS_PURGE_DAYS (page_texts_purge_due)."""
    started = timezone.now()
    deleted = _purge(account_id)
    PageTextPurge.objects.update_or_create(account_id=account_id, defaults={"purged_at": started})
    return deleted


def page_texts_purge_due(*, account_ids: Iterable[int], now) -> list[int]:
    """The accounts among these whose texts were last purged over settings.PAGE_TEXTS_PURGE_DAYS ago, or never."""
    recent = PageTextPurge.objects.filter(purged_at__gt=now - timedelta(days=settings.PAGE_TEXTS_PURGE_DAYS))
    fresh = set(recent.values_list("account_id", flat=True))
    return [account_id for account_id in account_ids if account_id not in fresh]


def _purge(account_id: int) -> int:
    texts = PageText.objects.filter(account_id=account_id)
    candidates = sorted(set(texts.values_list("pk", flat=True)) - page_texts_used(account_id=account_id))
    if not candidates:
        return 0
    mark = secrets.randbelow(2**31 - 1) + 1  # this purge's own: another purge's marks are not this one's to delete
    for start in range(0, len(candidates), PURGE_BATCH):
        texts.filter(pk__in=candidates[start : start + PURGE_BATCH]).update(purge_mark=mark)
    with transaction.atomic():
        _lock([account_id], exclusive=True)  # every recording that looked a text up before the mark has committed
    used = page_texts_used(account_id=account_id)
    deleted = 0
    for start in range(0, len(candidates), PURGE_BATCH):
        chunk = candidates[start : start + PURGE_BATCH]
        with transaction.atomic():
            texts.filter(pk__in=[pk for pk in chunk if pk in used], purge_mark=mark).update(purge_mark=None)
            gone = [pk for pk in chunk if pk not in used]
            if gone:
                deleted += texts.filter(pk__in=gone, purge_mark=mark)._raw_delete(connection.alias) or 0
    return deleted


def text_value(reference: str) -> Coalesce:
    """A text in a query, through its reference (`"page_url_text"`, `"attributed_impression__url_text"`): what the
    row's property reads, an empty string where there is none."""
    return Coalesce(F(reference + "__value"), Value(""), output_field=TextField())


def page_texts_values(ids: Iterable[int | None], *, using: str = "default") -> dict[int, str]:
    """{id: text} of these texts (a None id, no text, is left out)."""
    ids = [pk for pk in ids if pk is not None]
    return dict(PageText.objects.using(using).filter(pk__in=ids).values_list("pk", "value")) if ids else {}
