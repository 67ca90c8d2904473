"""CSV downloads of the report tables, and the export of an event's occurrences (raw rows, possibly millions)."""

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from zoneinfo import ZoneInfo

from django.db import models
from django.db.models.functions import Cast
from django.http import StreamingHttpResponse

from tracking.models import EventRecord

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
    "page_url": "page_url",
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


def _field(model, path: str) -> models.Field:
    *relations, name = path.split("__")
    for relation in relations:
        model = model._meta.get_field(relation).related_model
    return model._meta.get_field(name)


def export_selection(model, paths: Sequence[str]) -> list:
    """What to read for each field path: the path itself, or the stored text of a JSON field (decoded once per
    distinct value in a chunk: metadata repeats, a plan, a form, a campaign) and of a time (Django's psycopg loader
    of timestamps is Python code, several times slower than datetime.fromisoformat)."""
    return [Cast(path, models.TextField()) if isinstance(_field(model, path), READ_AS_TEXT) else path for path in paths]


def _column_cells(field: models.Field, tz: ZoneInfo) -> Callable:
    """How a column's values, as read (export_selection), become cells: csv_cell's, of the value the field holds."""
    if isinstance(field, models.DateTimeField):
        # In the account's time zone.
        return lambda text: "" if text is None else csv_text(instant_from_text(text).astimezone(tz).isoformat())
    if isinstance(field, models.JSONField):
        return lambda text: "" if text is None else csv_cell(json.loads(text))
    if isinstance(field, models.CharField | models.TextField):
        return csv_text  # csv_cell of a text, without its checks of the type
    return csv_cell


def csv_chunks(*, model, paths: Sequence[str], chunks: Iterable[Sequence[tuple]], tz: ZoneInfo) -> Iterator[str]:
    """CSV text, one string per chunk of rows, each row holding the values read for `paths` (export_selection) and
    possibly more values after them, which are ignored.

    The formatting is done a column at a time: C-level loops (map, set, zip, csv.writer.writerows) do the per-cell
    work, and in a column whose values repeat within the chunk (a source, a channel, a UTM value, metadata), each
    distinct value is formatted once."""
    formats = [_column_cells(_field(model, path), tz) for path in paths]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for rows in chunks:
        columns = []
        for index, cell in enumerate(formats):
            values = list(map(itemgetter(index), rows))
            distinct = set(values)
            if len(distinct) * 2 < len(values):
                cells = {value: cell(value) for value in distinct}
                columns.append(map(cells.__getitem__, values))
            else:
                columns.append(map(cell, values))
        writer.writerows(zip(*columns, strict=True))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def csv_rows_response(
    filename: str, *, columns: dict[str, str], chunks: Iterable[Sequence[tuple]], tz: ZoneInfo, model=EventRecord
) -> StreamingHttpResponse:
    """Streams raw rows read in chunks (see csv_chunks): memory holds one chunk, whatever the number of rows."""
    body = csv_chunks(model=model, paths=list(columns.values()), chunks=chunks, tz=tz)
    return _response(filename, list(columns), body)
