"""The report figures through GraphQL: the same selectors as the pages, for the API key's account.

Every report takes an optional range of local days (`start`, `end`, in the account's time zone, the last 30 days
by default) validated exactly as on the pages. Each field reads its figures inside its own consistent snapshot.
"""

from datetime import date

import graphene

from custom_events.selectors import custom_event_get
from paminga.graphql_core import JSON, ApiError, account_from_info

from . import selectors
from .forms import OccurrenceFilterForm, ReportRangeForm

MAX_OCCURRENCES = 100


class ReportDimension(graphene.Enum):
    """A breakdown of a custom event's occurrences."""

    SOURCE = "source"
    CHANNEL = "channel"
    UTM_SOURCE = "utm_source"
    UTM_MEDIUM = "utm_medium"
    UTM_CAMPAIGN = "utm_campaign"
    PAGE = "page"

    @property
    def description(self):
        return {
            "SOURCE": "Beacon or API.",
            "CHANNEL": "The marketing channel recorded with the occurrence.",
            "UTM_SOURCE": "The utm_source recorded with the occurrence.",
            "UTM_MEDIUM": "The utm_medium recorded with the occurrence.",
            "UTM_CAMPAIGN": "The utm_campaign recorded with the occurrence.",
            "PAGE": "The page URL, without its query string and fragment.",
        }[self.name]


class ReportDay(graphene.ObjectType):
    """One local day of a report."""

    day = graphene.Date(required=True, description="The day, in the account's time zone.")
    fires = graphene.Int(required=True, description="Occurrences recorded that day.")
    conversions = graphene.Int(required=True, description="Occurrences that counted as a conversion when they fired.")


class ConversionDay(graphene.ObjectType):
    """One local day of the account's conversions."""

    day = graphene.Date(required=True, description="The day, in the account's time zone.")
    conversions = graphene.Int(required=True, description="Conversions recorded that day, across events.")
    attributed_conversions = graphene.Int(required=True, description="Of those, conversions attributed to a page view.")


class BreakdownRow(graphene.ObjectType):
    """Occurrences sharing one value of a dimension (or of a metadata key)."""

    value = graphene.String(
        required=True, description="The value as recorded (empty when not set; see `label` for display)."
    )
    label = graphene.String(required=True, description="The value for display, e.g. 'Paid search' or '(not set)'.")
    fires = graphene.Int(required=True, description="Occurrences with this value.")
    conversions = graphene.Int(required=True, description="Of those, conversions.")
    share = graphene.Float(required=True, description="This value's fraction of the table's fires (0 to 1).")


class RateRow(graphene.ObjectType):
    """Conversions for one page or channel, with the conversion rate against its page views or visits."""

    value = graphene.String(required=True, description="The page URL or the channel as recorded.")
    label = graphene.String(required=True, description="The value for display.")
    conversions = graphene.Int(required=True, description="Conversions for this page or channel.")
    base = graphene.Int(required=True, description="Page views of the page, or visits from the channel, in the range.")
    conversion_rate = graphene.Float(description="conversions ÷ base; null when base is 0.")
    share = graphene.Float(required=True, description="This row's fraction of the table's conversions (0 to 1).")


def _rate_rows(rows) -> list[RateRow]:
    return [
        RateRow(
            value=r.value, label=r.label, conversions=r.conversions, base=r.base, conversion_rate=r.rate, share=r.share
        )
        for r in rows
    ]


def _breakdown_rows(rows) -> list[BreakdownRow]:
    return [
        BreakdownRow(value=r.value, label=r.label, fires=r.fires, conversions=r.conversions, share=r.share)
        for r in rows
    ]


class Occurrence(graphene.ObjectType):
    """One recorded occurrence of a custom event."""

    id = graphene.ID(required=True, description="The occurrence's id (pass it as `before_id` for the next page).")
    occurred_at = graphene.DateTime(required=True, description="When it fired.")
    contact_email = graphene.String(description="The contact's email; null for an anonymous visitor.")
    visitor_id = graphene.String(description="The beacon's visitor id; null for API events.")
    source = graphene.String(required=True, description="'beacon' or 'api'.")
    page_url = graphene.String(required=True, description="The page URL (empty for most API events).")
    marketing_channel = graphene.String(required=True, description="The recorded channel (empty when not set).")
    is_conversion = graphene.Boolean(required=True, description="Whether it counted as a conversion when it fired.")
    metadata = JSON(description="The metadata object as recorded; null when none or dropped.")
    metadata_dropped = graphene.Boolean(
        required=True, description="True when the metadata was over 4,096 bytes and dropped."
    )


class _Report:
    """The object a CustomEventReport's fields resolve from: the account, the range and the event. Each field reads
    its own figures, so a query pays only for the fields it asks for."""

    def __init__(self, account, start: date, end: date, custom_event):
        self.account, self.start, self.end, self.custom_event = account, start, end, custom_event
        self.time_zone = account.time_zone

    def scope(self):
        return selectors.report_scope(account=self.account, start=self.start, end=self.end)


class CustomEventFigures(graphene.ObjectType):
    """A custom event's figures over the report's range."""

    slug = graphene.String(required=True, description="The event's slug.")
    name = graphene.String(required=True, description="The event's display name.")
    counts_as_conversion = graphene.Boolean(
        required=True, description="The definition's current setting (past occurrences keep their own flag)."
    )
    fires = graphene.Int(required=True, description="Occurrences in the range.")
    unique_contacts = graphene.Int(
        required=True,
        description="Distinct contacts among them: a HyperLogLog estimate, within 3.2% 19 times out of 20 "
        "(exact in practice below a few hundred).",
    )
    unique_visitors = graphene.Int(
        required=True, description="Distinct beacon visitors among them: an estimate, as unique_contacts."
    )
    conversions = graphene.Int(required=True, description="Occurrences that counted as a conversion when they fired.")
    attributed_conversions = graphene.Int(required=True, description="Conversions attributed to a page view.")
    daily = graphene.List(graphene.NonNull(ReportDay), required=True, description="Every day of the range.")


def _figures(f, days) -> CustomEventFigures:
    return CustomEventFigures(
        slug=f.event.slug,
        name=f.event.name,
        counts_as_conversion=f.event.counts_as_conversion,
        fires=f.fires,
        unique_contacts=f.unique_contacts,
        unique_visitors=f.unique_visitors,
        conversions=f.conversions,
        attributed_conversions=f.attributed,
        daily=[
            ReportDay(day=d, fires=a, conversions=b)
            for d, a, b in zip(days, f.daily_fires, f.daily_conversions, strict=True)
        ],
    )


class AllEventsFigures(graphene.ObjectType):
    """The account's figures across every custom event (people counted once)."""

    fires = graphene.Int(required=True, description="Occurrences of every event in the range.")
    unique_contacts = graphene.Int(
        required=True,
        description="Distinct contacts across events: an estimate, as CustomEventFigures.unique_contacts.",
    )
    unique_visitors = graphene.Int(
        required=True,
        description="Distinct beacon visitors across events: an estimate, as CustomEventFigures.unique_contacts.",
    )
    conversions = graphene.Int(required=True, description="Conversions across events.")


class CustomEventsReport(graphene.ObjectType):
    """Every custom event of the account with its figures."""

    start = graphene.Date(required=True, description="The first day of the range (the account's time zone).")
    end = graphene.Date(required=True, description="The last day of the range, included.")
    time_zone = graphene.String(required=True, description="The account's time zone, in which days are counted.")
    events = graphene.List(
        graphene.NonNull(CustomEventFigures), required=True, description="Every custom event, most fires first."
    )
    all_events = graphene.Field(AllEventsFigures, required=True, description="Totals across events.")


class CustomEventReport(graphene.ObjectType):
    """One custom event's report: figures, breakdowns, attribution, metadata and occurrences."""

    start = graphene.Date(required=True, description="The first day of the range (the account's time zone).")
    end = graphene.Date(required=True, description="The last day of the range, included.")
    time_zone = graphene.String(required=True, description="The account's time zone, in which days are counted.")
    figures = graphene.Field(CustomEventFigures, required=True, description="Totals and the daily series.")
    breakdown = graphene.List(
        graphene.NonNull(BreakdownRow),
        required=True,
        dimension=graphene.Argument(ReportDimension, required=True, description="What to break down by."),
        description="Fires and conversions by one dimension, most fires first.",
    )
    attributed_pages = graphene.List(
        graphene.NonNull(RateRow),
        required=True,
        description="Attributed conversions by the page of the attributed page view, with the page's conversion "
        "rate (attributed conversions ÷ page views of the page).",
    )
    attributed_channels = graphene.List(
        graphene.NonNull(RateRow),
        required=True,
        description="Attributed conversions by the channel of the attributed page view (base: visits).",
    )
    metadata_keys = graphene.List(
        graphene.NonNull(graphene.String), required=True, description="Top-level metadata keys seen in the range."
    )
    metadata_breakdown = graphene.List(
        graphene.NonNull(BreakdownRow),
        required=True,
        key=graphene.Argument(graphene.String, required=True, description="The metadata key, e.g. planTier."),
        description="Fires and conversions by the values of one metadata key.",
    )
    occurrences = graphene.List(
        graphene.NonNull(Occurrence),
        required=True,
        metadata_key=graphene.Argument(graphene.String, description="Only occurrences whose metadata has this key."),
        metadata_value=graphene.Argument(graphene.String, description="…with this value (as the breakdown shows it)."),
        before_id=graphene.Argument(graphene.ID, description="Continue after this occurrence (the last one you got)."),
        first=graphene.Argument(graphene.Int, default_value=25, description=f"How many, 1 to {MAX_OCCURRENCES}."),
        description="Occurrences in the range, newest first.",
    )

    def resolve_figures(report: _Report, info):
        with report.scope() as scope:
            return _figures(selectors.event_figures(scope=scope, custom_event=report.custom_event), scope.days)

    def resolve_breakdown(report: _Report, info, dimension):
        with report.scope() as scope:
            rows = selectors.event_breakdown(
                scope=scope, custom_event=report.custom_event, dimension=getattr(dimension, "value", dimension)
            )
        return _breakdown_rows(rows)

    def resolve_attributed_pages(report: _Report, info):
        with report.scope() as scope:
            return _rate_rows(selectors.attributed_by_page(scope=scope, custom_event=report.custom_event))

    def resolve_attributed_channels(report: _Report, info):
        with report.scope() as scope:
            return _rate_rows(selectors.attributed_by_channel(scope=scope, custom_event=report.custom_event))

    def resolve_metadata_keys(report: _Report, info):
        with report.scope() as scope:
            return selectors.event_metadata_keys(scope=scope, custom_event=report.custom_event)

    def resolve_metadata_breakdown(report: _Report, info, key):
        _filters(key=key)
        with report.scope() as scope:
            rows = selectors.event_metadata_breakdown(scope=scope, custom_event=report.custom_event, key=key)
        return _breakdown_rows(rows)

    def resolve_occurrences(report: _Report, info, first=25, metadata_key=None, metadata_value=None, before_id=None):
        if not 1 <= first <= MAX_OCCURRENCES:
            raise ApiError(f"first must be between 1 and {MAX_OCCURRENCES}.", code="INVALID_INPUT", field="first")
        values = _filters(meta_key=metadata_key or "", meta_value=metadata_value or "", before=before_id)
        with report.scope() as scope:
            records = list(
                selectors.event_occurrences(
                    scope=scope,
                    custom_event=report.custom_event,
                    metadata_key=values["meta_key"],
                    metadata_value=metadata_value,
                    before_id=values["before"],
                    limit=first,
                )
            )
        return [
            Occurrence(
                id=r.pk,
                occurred_at=r.occurred_at,
                contact_email=r.contact.email,
                visitor_id=r.visitor.uid if r.visitor else None,
                source=r.source,
                page_url=r.page_url,
                marketing_channel=r.marketing_channel,
                is_conversion=r.is_conversion,
                metadata=r.metadata,
                metadata_dropped=r.metadata_dropped,
            )
            for r in records
        ]


class EventConversions(graphene.ObjectType):
    """One custom event's conversions over the range."""

    slug = graphene.String(required=True, description="The event's slug.")
    name = graphene.String(required=True, description="The event's display name.")
    fires = graphene.Int(required=True, description="Occurrences in the range.")
    conversions = graphene.Int(required=True, description="Occurrences that counted as a conversion when they fired.")
    attributed_conversions = graphene.Int(required=True, description="Conversions attributed to a page view.")


class ConversionsReport(graphene.ObjectType):
    """The account's conversions across events, by day, event, channel and page."""

    start = graphene.Date(required=True, description="The first day of the range (the account's time zone).")
    end = graphene.Date(required=True, description="The last day of the range, included.")
    time_zone = graphene.String(required=True, description="The account's time zone, in which days are counted.")
    conversions = graphene.Int(required=True, description="Conversions in the range, across events.")
    attributed_conversions = graphene.Int(required=True, description="Of those, attributed to a page view.")
    visits = graphene.Int(required=True, description="Visits that started in the range.")
    page_views = graphene.Int(required=True, description="Page views in the range.")
    conversion_rate = graphene.Float(description="Conversions ÷ visits; null without visits.")
    daily = graphene.List(graphene.NonNull(ConversionDay), required=True, description="Every day of the range.")
    by_event = graphene.List(
        graphene.NonNull(lambda: EventConversions),
        required=True,
        description="Events with conversions in the range, most conversions first.",
    )
    by_channel = graphene.List(
        graphene.NonNull(RateRow),
        required=True,
        description="Conversions by the channel recorded with them (base: visits from the channel).",
    )
    by_page = graphene.List(
        graphene.NonNull(RateRow),
        required=True,
        description="Attributed conversions by the page of the attributed page view (base: its page views).",
    )


def _range(account, start, end) -> tuple[date, date]:
    data = {}
    if start is not None:
        data["start"] = start.isoformat()
    if end is not None:
        data["end"] = end.isoformat()
    form = ReportRangeForm(data or None, account=account)
    if data and not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        raise ApiError(" ".join(errors), code="INVALID_INPUT", field=None if field == "__all__" else field)
    return form.period()


def _filters(**values) -> dict:
    form = OccurrenceFilterForm({k: v for k, v in values.items() if v not in (None, "")})
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        field = {"meta_key": "metadata_key", "meta_value": "metadata_value", "before": "before_id"}.get(field, field)
        raise ApiError(" ".join(errors), code="INVALID_INPUT", field=field)
    return form.cleaned_data


RANGE_ARGS = {
    "start": graphene.Argument(graphene.Date, description="First local day (default: 29 days before `end`)."),
    "end": graphene.Argument(graphene.Date, description="Last local day, included (default: today)."),
}


class ReportsQuery(graphene.ObjectType):
    """Report queries, for the API key's account."""

    custom_events_report = graphene.Field(
        CustomEventsReport,
        required=True,
        description="Every custom event with fires, unique contacts and visitors, conversions and a daily series.",
        **RANGE_ARGS,
    )
    custom_event_report = graphene.Field(
        CustomEventReport,
        required=True,
        slug=graphene.Argument(graphene.String, required=True, description="The custom event's slug."),
        description="One custom event's report.",
        **RANGE_ARGS,
    )
    conversions_report = graphene.Field(
        ConversionsReport, required=True, description="The account's conversions across events.", **RANGE_ARGS
    )

    def resolve_custom_events_report(root, info, start=None, end=None):
        account = account_from_info(info)
        start, end = _range(account, start, end)
        with selectors.report_scope(account=account, start=start, end=end) as scope:
            rows, overall = selectors.event_overview(scope=scope)
        return CustomEventsReport(
            start=start,
            end=end,
            time_zone=account.time_zone,
            events=[_figures(f, scope.days) for f in rows],
            all_events=AllEventsFigures(
                fires=overall.fires,
                unique_contacts=overall.unique_contacts,
                unique_visitors=overall.unique_visitors,
                conversions=overall.conversions,
            ),
        )

    def resolve_custom_event_report(root, info, slug, start=None, end=None):
        account = account_from_info(info)
        start, end = _range(account, start, end)
        event = custom_event_get(account=account, slug=slug) if len(slug) <= 200 else None
        if event is None:
            raise ApiError(f"No custom event with the slug “{slug[:200]}”.", code="NOT_FOUND", field="slug")
        return _Report(account, start, end, event)

    def resolve_conversions_report(root, info, start=None, end=None):
        account = account_from_info(info)
        start, end = _range(account, start, end)
        with selectors.report_scope(account=account, start=start, end=end) as scope:
            summary = selectors.conversions_summary(scope=scope)
            by_channel = selectors.conversions_by_channel(scope=scope)
            by_page = selectors.attributed_by_page(scope=scope)
        return ConversionsReport(
            start=start,
            end=end,
            time_zone=account.time_zone,
            conversions=summary.conversions,
            attributed_conversions=summary.attributed,
            visits=summary.visits,
            page_views=summary.page_views,
            conversion_rate=summary.conversion_rate,
            daily=[
                ConversionDay(day=d, conversions=c, attributed_conversions=a)
                for d, c, a in zip(scope.days, summary.daily_conversions, summary.daily_attributed, strict=True)
            ],
            by_event=[
                EventConversions(
                    slug=f.event.slug,
                    name=f.event.name,
                    fires=f.fires,
                    conversions=f.conversions,
                    attributed_conversions=f.attributed,
                )
                for f in summary.by_event
            ],
            by_channel=_rate_rows(by_channel),
            by_page=_rate_rows(by_page),
        )
