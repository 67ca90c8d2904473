"""CSV downloads of the report tables, and the export of an event's occurrences (raw rows, possibly millions)."""

import contextlib
import csv
import io
import json
import queue
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

from django.db import connections, models
from django.db.models.functions import Cast
from django.http import StreamingHttpResponse

from tracking.models import EventRecord, PageText
from tracking.texts import page_texts_values

from .selectors import instant_from_text

# A spreadsheet runs a cell starting with one of these as a formula: exported values are user-supplied (page URLs,
# UTM fields, metadata), so such cells are prefixed with an apostrophe, which spreadsheets show as text.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

# The occurrences CSV: each column and the field it is read from (a path through the contact or the visitor where
# it crosses a relation). The only list of them: the reads and the cell formats are derived from the fields.
OCCURRENCE_COLUMNS = {
    "occurred_at": "occurred_at",
    "contact_email": "contact__email",
    "contact_id": "contact_id",
    "visitor": "visitor__uid",
    "source": "source",
    # A page text (tracking.texts), read by its id and looked up once per export: a join on every row costs the
    # database more than the look-ups (a third of the export's rate, measured).
    "page_url": "page_url_text",
    "marketing_channel": "marketing_channel",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_term": "utm_term",
    "utm_content": "utm_content",
    "is_conversion": "is_conversion",
    "attributed_impression_id": "attributed_impression_id",
    "metadata": "metadata",
    "metadata_dropped": "metadata_dropped",
}


# json.dumps with these options builds an encoder on every call: one, made once, is faster on millions of rows.
_json_text = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_text(value: str | None) -> str:
    """The cell of a text: empty for None, prefixed when a spreadsheet would run it as a formula."""
    if not value:
        return ""
    if value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict | list):
        value = _json_text(value)
    return csv_text(str(value))


def _response(filename: str, header: list[str], body: Iterable[str]) -> StreamingHttpResponse:
    def lines():
        yield "\ufeff"  # a byte-order mark, so that spreadsheets read the file as UTF-8
        yield csv.writer(_Echo()).writerow(header)
        yield from body

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable]) -> StreamingHttpResponse:
    """Streams the rows (a generator is read as it is sent, so large tables are never held in memory)."""
    writer = csv.writer(_Echo())
    return _response(filename, header, (writer.writerow([csv_cell(v) for v in row]) for row in rows))


# --- Raw rows -----------------------------------------------------------------------------------------------------

READ_AS_TEXT = (models.JSONField, models.DateTimeField)
# About the bytes each per-export cache (the cells of a column) holds before it starts again: a cache makes a
# repeated value cost once per export rather than once per page, and its memory does not grow with the size of the
# export. Each entry counts its characters and this much for the dict and the key.
EXPORT_CACHE_BYTES = 8_000_000
CACHE_ENTRY_BYTES = 100


def _field(model, path: str) -> models.Field:
    *relations, name = path.split("__")
    for relation in relations:
        model = model._meta.get_field(relation).related_model
    return model._meta.get_field(name)


def export_selection(model, paths: Sequence[str]) -> list:
    """What to read for each field path: the path itself, or the stored text of a JSON field (decoded once per
    distinct value: metadata repeats, a plan, a form, a campaign) and of a time (Django's psycopg loader of
    timestamps is Python code, several times slower than datetime.fromisoformat)."""
    return [Cast(path, models.TextField()) if isinstance(_field(model, path), READ_AS_TEXT) else path for path in paths]


class _Cache(dict):
    """Values kept across the pages of one export, up to about EXPORT_CACHE_BYTES: past that it starts again with
    the current page's values only."""

    def __init__(self):
        super().__init__()
        self.size = 0

    def cover(self, keys: set, compute: Callable[[list], Iterable]) -> None:
        """Makes the cache hold every key of a page, computing the values of those it does not hold (`compute`
        takes a list of keys and gives their values in the same order)."""
        missing = list(keys.difference(self))
        if not missing:
            return
        values = list(compute(missing))
        size = _size(values)
        if self.size + size > EXPORT_CACHE_BYTES:
            kept = {key: self[key] for key in keys.intersection(self)}
            self.clear()
            self.update(kept)
            self.size = _size(kept.values())
        self.update(zip(missing, values, strict=True))
        self.size += size


def _size(values: Collection) -> int:
    return sum(map(len, map(str, values))) + CACHE_ENTRY_BYTES * len(values)


class _TextCells:
    """The cells of a column of page text ids: their texts, looked up by the many (page_texts_values)."""

    def __init__(self, database: str):
        self.database = database

    def __call__(self, ids: list) -> list[str]:
        texts = page_texts_values(ids, using=self.database)
        return [csv_text(texts.get(pk)) for pk in ids]


def _column_cells(field: models.Field, tz: ZoneInfo, database: str) -> Callable:
    """How a column's values, as read (export_selection), become cells: csv_cell's, of the value the field holds."""
    if isinstance(field, models.ForeignKey) and field.related_model is PageText:
        return _TextCells(database)
    if isinstance(field, models.DateTimeField):
        # In the account's time zone.
        return lambda text: "" if text is None else csv_text(instant_from_text(text).astimezone(tz).isoformat())
    if isinstance(field, models.JSONField):
        return lambda text: "" if text is None else csv_cell(json.loads(text))
    if isinstance(field, models.CharField | models.TextField):
        return csv_text  # csv_cell of a text, without its checks of the type
    return csv_cell


def _cells(values: Sequence, cell: Callable, cache: _Cache) -> Iterable[str]:
    """The cells of one column of a page. Where the column's values repeat within the page (a source, a channel, a
    UTM value, metadata), each distinct value is formatted once per export, kept in the column's cache; values that
    are mostly distinct (times, page URLs) are formatted as they come, and not kept."""
    distinct = set(values)
    if isinstance(cell, _TextCells):
        cache.cover(distinct, cell)
        return map(cache.__getitem__, values)
    if len(distinct) * 2 >= len(values):
        return map(cell, values)
    cache.cover(distinct, lambda missing: map(cell, missing))
    return map(cache.__getitem__, values)


def csv_chunks(
    *, model, paths: Sequence[str], pages: Iterable[Sequence[Sequence]], tz: ZoneInfo, database: str
) -> Iterator[str]:
    """CSV text, one string per page, each page given as its columns: the values read for `paths`
    (export_selection).

    The formatting is done a column at a time, with C-level loops (map, set, zip, csv.writer.writerows) doing the
    per-cell work, and repeated values formatted once per export (_cells)."""
    formats = [_column_cells(_field(model, path), tz, database) for path in paths]
    caches = [_Cache() for _ in paths]
    for columns in pages:
        # A new buffer per page: writing into a StringIO that was truncated is much slower than into a new one.
        buffer = io.StringIO()
        cells = map(_cells, columns, formats, caches)
        csv.writer(buffer).writerows(zip(*cells, strict=True))
        yield buffer.getvalue()


def _columns(pages: Iterable[Sequence[tuple]], width: int) -> Iterator[list]:
    """Pages of rows as their first `width` columns."""
    for rows in pages:
        yield list(zip(*rows, strict=True))[:width]


def _read_ahead(pages: Iterator, database: str) -> Iterator:
    """The pages, read on a second thread, each while the caller formats the previous one: the database works on
    a page (on the other core) while Python turns the last one into text. At most two pages are held: the one
    being formatted and the one being read. The thread has its own connection to `database`, closed when the pages
    end or the caller stops early (a client that disconnects closes the response, and so this generator).

    Inside a transaction the pages are read in the caller's thread: another connection would not see its rows."""
    if connections[database].in_atomic_block:
        yield from pages
        return
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_pages, args=(pages, database, ready, stop), name="export-reader", daemon=True
    )
    reader.start()
    try:
        while True:
            kind, value = ready.get()
            ready.task_done()  # the reader goes on to the next page
            if kind == "page":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        while reader.is_alive():  # takes what the reader still hands over, so that it sees `stop` and ends
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.05)
                ready.task_done()
        reader.join()


def _read_pages(pages: Iterator, database: str, ready: queue.Queue, stop: threading.Event) -> None:
    """The reading thread of _read_ahead: hands over each page, waits until it is taken (so that no more than one
    page waits), and ends with "end" or the error that stopped it."""
    try:
        for page in pages:
            ready.put(("page", page))
            ready.join()
            if stop.is_set():
                break
        ready.put(("end", None))
    except Exception as error:
        ready.put(("error", error))
    finally:
        pages.close()
        connections[database].close()


def csv_rows_response(
    filename: str,
    *,
    columns: dict[str, str],
    pages: Iterable[Sequence[tuple]],
    tz: ZoneInfo,
    database: str,
    model=EventRecord,
) -> StreamingHttpResponse:
    """Streams raw rows read in pages, each row holding the values read for the columns' paths (export_selection)
    and possibly more values after them, which are ignored. Memory holds a page or two and the bounded caches,
    whatever the number of rows."""
    paths = list(columns.values())
    pages = _read_ahead(_columns(pages, len(paths)), database)
    body = csv_chunks(model=model, paths=paths, pages=pages, tz=tz, database=database)
    return _response(filename, list(columns), body)
