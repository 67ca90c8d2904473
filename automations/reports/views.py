"""Report pages and their CSV downloads. Thin: parse the query string, read through the selectors, render."""

import json
from datetime import timedelta
from urllib.parse import urlencode

from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import render
from django.utils import timezone

from custom_events.selectors import custom_event_get_or_404
from paminga.accounts import account_required
from tracking.models import EventRecord

from . import selectors
from .charts import CONVERSIONS_COLOR, FIRES_COLOR, Series, sparkline, time_series_chart
from .exports import OCCURRENCE_COLUMNS, csv_response, csv_rows_response, export_selection
from .forms import OccurrenceFilterForm, OverviewSortForm, ReportRangeForm

BREAKDOWN_TITLES = {
    "source": "Source",
    "channel": "Marketing channel",
    "utm_source": "UTM source",
    "utm_medium": "UTM medium",
    "utm_campaign": "UTM campaign",
    "page": "Page",
}
TABLE_ROWS_SHOWN = 10


def _period(request):
    form = ReportRangeForm(request.GET or None, account=request.account)
    start, end = form.period()
    return form, start, end


def _range_query(start, end) -> str:
    return urlencode({"start": start.isoformat(), "end": end.isoformat()})


def _presets(account, current_start, current_end) -> list[dict]:
    today = timezone.now().astimezone(account.tzinfo).date()
    presets = []
    for label, days in (("Last 7 days", 7), ("Last 30 days", 30), ("Last 90 days", 90), ("Last 12 months", 365)):
        start = today - timedelta(days=days - 1)
        presets.append(
            {
                "label": label,
                "query": _range_query(start, today),
                "current": (start, today) == (current_start, current_end),
            }
        )
    return presets


def _bad_request(form) -> HttpResponseBadRequest:
    messages = [str(m) for errors in form.errors.values() for m in errors]
    return HttpResponseBadRequest("\n".join(messages) + "\n", content_type="text/plain; charset=utf-8")


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 2)


# --- Custom events overview -------------------------------------------------------------------------------------


@account_required
def overview(request):
    form, start, end = _period(request)
    sort_form = OverviewSortForm(request.GET)
    sort, descending = sort_form.ordering()
    with selectors.report_scope(account=request.account, start=start, end=end) as scope:
        rows, overall = selectors.event_overview(scope=scope, sort=sort, descending=descending)
    for row in rows:
        row.sparkline = sparkline(row.daily_fires, label=f"Daily fires of {row.event.name}, {start} to {end}")
    range_query = _range_query(start, end)
    headers = []
    for key, label in (
        ("name", "Event"),
        ("fires", "Fires"),
        ("unique_contacts", "Unique contacts"),
        ("unique_visitors", "Unique visitors"),
        ("conversions", "Conversions"),
    ):
        active = key == sort
        next_dir = ("asc" if descending else "desc") if active else ("asc" if key == "name" else "desc")
        headers.append(
            {
                "key": key,
                "label": label,
                "query": f"{range_query}&{urlencode({'sort': key, 'dir': next_dir})}",
                "aria_sort": ("descending" if descending else "ascending") if active else None,
                "numeric": key != "name",
            }
        )
    return render(
        request,
        "automations/reports/overview.html",
        {
            "form": form,
            "start": start,
            "end": end,
            "presets": _presets(request.account, start, end),
            "rows": rows,
            "overall": overall,
            "headers": headers,
            "range_query": range_query,
            "keep_sort": [("sort", sort), ("dir", "desc" if descending else "asc")],
            "sort_query": urlencode({"sort": sort, "dir": "desc" if descending else "asc"}),
            "chart": time_series_chart(
                days=scope.days,
                series=[
                    Series("Fires", overall.daily_fires, FIRES_COLOR),
                    Series("Conversions", overall.daily_conversions, CONVERSIONS_COLOR, kind="line"),
                ],
                title=f"Daily fires and conversions of all custom events, {start} to {end}",
            ),
        },
    )


@account_required
def overview_csv(request):
    form, start, end = _period(request)
    if form.is_bound and not form.is_valid():
        return _bad_request(form)
    sort, descending = OverviewSortForm(request.GET).ordering()
    with selectors.report_scope(account=request.account, start=start, end=end) as scope:
        rows, overall = selectors.event_overview(scope=scope, sort=sort, descending=descending)
    header = ["event", "slug", "counts_as_conversion", "fires", "unique_contacts", "unique_visitors", "conversions"]
    data = [
        [
            r.event.name,
            r.event.slug,
            r.event.counts_as_conversion,
            r.fires,
            r.unique_contacts,
            r.unique_visitors,
            r.conversions,
        ]
        for r in rows
    ]
    data.append(
        ["All events", "", "", overall.fires, overall.unique_contacts, overall.unique_visitors, overall.conversions]
    )
    return csv_response(f"custom-events-{start}-{end}.csv", header, data)


# --- One event's report -----------------------------------------------------------------------------------------


def _metadata_text(record) -> str:
    if record.metadata is None:
        return ""
    return json.dumps(record.metadata, ensure_ascii=False, sort_keys=True)


@account_required
def event_report(request, pk: int):
    event = custom_event_get_or_404(account=request.account, pk=pk)
    form, start, end = _period(request)
    filters = OccurrenceFilterForm(request.GET)
    values = filters.values()
    with selectors.report_scope(account=request.account, start=start, end=end) as scope:
        figures = selectors.event_figures(scope=scope, custom_event=event)
        breakdowns = _event_breakdowns(scope, event)
        attributed_pages = selectors.attributed_by_page(scope=scope, custom_event=event)
        attributed_channels = selectors.attributed_by_channel(scope=scope, custom_event=event)
        metadata = _event_metadata(scope, event, values["key"])
        occurrences = _event_occurrences(scope, event, values)
    return render(
        request,
        "automations/reports/event.html",
        {
            "event": event,
            "form": form,
            "filters": filters,
            "start": start,
            "end": end,
            "presets": _presets(request.account, start, end),
            "figures": figures,
            "conversion_rate": _percent(figures.conversion_rate),
            "chart": time_series_chart(
                days=scope.days,
                series=[
                    Series("Fires", figures.daily_fires, FIRES_COLOR),
                    Series("Conversions", figures.daily_conversions, CONVERSIONS_COLOR, kind="line"),
                ],
                title=f"Daily fires and conversions of {event.name}, {start} to {end}",
            ),
            "daily": list(zip(scope.days, figures.daily_fires, figures.daily_conversions, strict=True)),
            "breakdowns": breakdowns,
            "attributed_pages": attributed_pages[:TABLE_ROWS_SHOWN],
            "attributed_pages_more": max(len(attributed_pages) - TABLE_ROWS_SHOWN, 0),
            "attributed_channels": attributed_channels,
            **metadata,
            **occurrences,
            "values": values,
            "keep": [(k, values[k]) for k in ("key", "meta_key", "meta_value") if values[k]],
            "range_query": _range_query(start, end),
            "filter_query": urlencode({k: values[k] for k in ("meta_key", "meta_value") if values[k]}),
            "account_tz": request.account.time_zone,
        },
    )


def _event_breakdowns(scope, event) -> list[dict]:
    """One table per breakdown dimension, cut to the rows shown, with how many more there are."""
    return [
        {
            "dimension": dimension,
            "title": BREAKDOWN_TITLES[dimension],
            "rows": rows[:TABLE_ROWS_SHOWN],
            "more": max(len(rows) - TABLE_ROWS_SHOWN, 0),
        }
        for dimension in selectors.BREAKDOWN_DIMENSIONS
        for rows in [selectors.event_breakdown(scope=scope, custom_event=event, dimension=dimension)]
    ]


def _event_metadata(scope, event, requested_key: str) -> dict:
    """The metadata keys seen in the period and the breakdown by one of them: the requested key when it was
    seen, else the first."""
    keys = selectors.event_metadata_keys(scope=scope, custom_event=event)
    key = requested_key if requested_key in keys else (keys[0] if keys else "")
    rows = selectors.event_metadata_breakdown(scope=scope, custom_event=event, key=key) if key else []
    return {
        "metadata_keys": keys,
        "metadata_key": key,
        "metadata_rows": rows[:TABLE_ROWS_SHOWN],
        "metadata_more": max(len(rows) - TABLE_ROWS_SHOWN, 0),
    }


def _event_occurrences(scope, event, values: dict) -> dict:
    """One page of occurrences matching the metadata filter, newest first, and where the next page starts."""
    # One more than a page is read to know whether there is a next page.
    occurrences = list(
        selectors.event_occurrences(
            scope=scope,
            custom_event=event,
            metadata_key=values["meta_key"],
            metadata_value=values["meta_value"] or None,
            before_id=values["before"],
            limit=selectors.OCCURRENCES_PAGE + 1,
        )
    )
    more = len(occurrences) > selectors.OCCURRENCES_PAGE
    occurrences = occurrences[: selectors.OCCURRENCES_PAGE]
    for record in occurrences:
        record.metadata_text = _metadata_text(record)
    return {"occurrences": occurrences, "next_before": occurrences[-1].pk if more and occurrences else None}


def _event_table(scope, event, table: str, values: dict) -> tuple[list[str], list] | None:
    """The header and rows of one of the report's tables, None for an unknown table name."""
    if table == "daily":
        figures = selectors.event_figures(scope=scope, custom_event=event)
        return ["day", "fires", "conversions"], list(
            zip(scope.days, figures.daily_fires, figures.daily_conversions, strict=True)
        )
    if table in selectors.BREAKDOWN_DIMENSIONS:
        rows = selectors.event_breakdown(scope=scope, custom_event=event, dimension=table)
        header = [table, "label", "fires", "conversions", "share_of_fires"]
        return header, [[r.value, r.label, r.fires, r.conversions, r.share] for r in rows]
    if table == "attributed-pages":
        rows = selectors.attributed_by_page(scope=scope, custom_event=event)
        header = ["page", "attributed_conversions", "page_views", "conversion_rate"]
        return header, [[r.label, r.conversions, r.base, r.rate] for r in rows]
    if table == "attributed-channels":
        rows = selectors.attributed_by_channel(scope=scope, custom_event=event)
        header = ["channel", "label", "attributed_conversions", "share_of_attributed"]
        return header, [[r.value, r.label, r.conversions, r.share] for r in rows]
    if table == "metadata":
        key = values["key"]
        rows = selectors.event_metadata_breakdown(scope=scope, custom_event=event, key=key)
        header = ["key", "value", "fires", "conversions", "share_of_fires"]
        return header, [[key, r.label, r.fires, r.conversions, r.share] for r in rows]
    return None


@account_required
def event_report_csv(request, pk: int, table: str):
    event = custom_event_get_or_404(account=request.account, pk=pk)
    form, start, end = _period(request)
    if form.is_bound and not form.is_valid():
        return _bad_request(form)
    filters = OccurrenceFilterForm(request.GET)
    if not filters.is_valid():
        return _bad_request(filters)
    values = filters.cleaned_data
    if table == "metadata" and not values["key"]:
        return HttpResponseBadRequest("Choose the metadata key: ?key=…\n", content_type="text/plain")
    name = f"{event.slug}-{table}-{start}-{end}.csv"
    with selectors.report_scope(account=request.account, start=start, end=end) as scope:
        if table != "occurrences":
            found = _event_table(scope, event, table, values)
            if found is None:
                raise Http404("No such table.")
            return csv_response(name, *found)
        pages = selectors.event_occurrences_pages(
            scope=scope,
            custom_event=event,
            fields=export_selection(EventRecord, list(OCCURRENCE_COLUMNS.values())),
            metadata_key=values["meta_key"],
            metadata_value=values["meta_value"] or None,
        )
    # Read page by page while the response is written, after the scope closed (each page is its own statement).
    return csv_rows_response(
        name, columns=OCCURRENCE_COLUMNS, pages=pages, tz=request.account.tzinfo, database=scope.database
    )


# --- Account conversions ----------------------------------------------------------------------------------------


@account_required
def conversions(request):
    form, start, end = _period(request)
    with selectors.report_scope(account=request.account, start=start, end=end) as scope:
        summary = selectors.conversions_summary(scope=scope)
        by_channel = selectors.conversions_by_channel(scope=scope)
        by_page = selectors.attributed_by_page(scope=scope)
    return render(
        request,
        "automations/reports/conversions.html",
        {
            "form": form,
            "start": start,
            "end": end,
            "presets": _presets(request.account, start, end),
            "summary": summary,
            "conversion_rate": _percent(summary.conversion_rate),
            "chart": time_series_chart(
                days=scope.days,
                series=[
                    Series("Conversions", summary.daily_conversions, CONVERSIONS_COLOR),
                    Series("Attributed to a page view", summary.daily_attributed, FIRES_COLOR, kind="line"),
                ],
                title=f"Daily conversions, {start} to {end}",
            ),
            "by_channel": by_channel,
            "by_page": by_page[: TABLE_ROWS_SHOWN * 2],
            "by_page_more": max(len(by_page) - TABLE_ROWS_SHOWN * 2, 0),
            "range_query": _range_query(start, end),
        },
    )


@account_required
def conversions_csv(request, table: str):
    form, start, end = _period(request)
    if form.is_bound and not form.is_valid():
        return _bad_request(form)
    name = f"conversions-{table}-{start}-{end}.csv"
    with selectors.report_scope(account=request.account, start=start, end=end) as scope:
        if table == "daily":
            summary = selectors.conversions_summary(scope=scope)
            rows = zip(scope.days, summary.daily_conversions, summary.daily_attributed, strict=True)
            return csv_response(name, ["day", "conversions", "attributed_conversions"], list(rows))
        if table == "events":
            summary = selectors.conversions_summary(scope=scope)
            return csv_response(
                name,
                ["event", "slug", "fires", "conversions", "attributed_conversions"],
                [[f.event.name, f.event.slug, f.fires, f.conversions, f.attributed] for f in summary.by_event],
            )
        if table == "channels":
            rows = selectors.conversions_by_channel(scope=scope)
            return csv_response(
                name,
                ["channel", "label", "conversions", "visits", "conversion_rate"],
                [[r.value, r.label, r.conversions, r.base, r.rate] for r in rows],
            )
        if table == "pages":
            rows = selectors.attributed_by_page(scope=scope)
            return csv_response(
                name,
                ["page", "attributed_conversions", "page_views", "conversion_rate"],
                [[r.label, r.conversions, r.base, r.rate] for r in rows],
            )
    raise Http404("No such table.")
