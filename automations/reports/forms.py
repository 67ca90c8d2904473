from datetime import date, timedelta

from django import forms
from django.utils import timezone

from paminga.models import Account

from .selectors import MAX_DAYS, OVERVIEW_SORTS, report_default_range

EARLIEST = date(2000, 1, 1)


class ReportRangeForm(forms.Form):
    """The report's local days, start..end inclusive; both default to the last 30 days."""

    start = forms.DateField(required=False, input_formats=["%Y-%m-%d"], widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, input_formats=["%Y-%m-%d"], widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data=None, *, account: Account, **kwargs):
        self.account = account
        self.default = report_default_range(account=account)
        super().__init__(data, **kwargs)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        start = cleaned.get("start")
        end = cleaned.get("end")
        today = timezone.now().astimezone(self.account.tzinfo).date()
        # Bounds first: the defaults below add or subtract days, which overflows at the ends of the calendar.
        if (start and start < EARLIEST) or (end and end < EARLIEST):
            raise forms.ValidationError("Reports start on 1 January 2000 at the earliest.", code="too_early")
        if end and end > today + timedelta(days=1):
            raise forms.ValidationError("The end date is in the future.", code="future")
        if start and start > today + timedelta(days=1):
            raise forms.ValidationError("The start date is in the future.", code="future")
        if start is None and end is None:
            start, end = self.default
        elif end is None:
            end = min(start + timedelta(days=29), self.default[1])
        elif start is None:
            start = end - timedelta(days=29)
        if start < EARLIEST:
            raise forms.ValidationError("Reports start on 1 January 2000 at the earliest.", code="too_early")
        if start > end:
            raise forms.ValidationError("The start date is after the end date.", code="reversed")
        if (end - start).days + 1 > MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.", code="too_long")
        cleaned["start"], cleaned["end"] = start, end
        return cleaned

    def period(self) -> tuple[date, date]:
        """The valid range asked for, or the default one."""
        if self.is_valid():
            return self.cleaned_data["start"], self.cleaned_data["end"]
        return self.default


class OverviewSortForm(forms.Form):
    sort = forms.ChoiceField(choices=[(k, k) for k in OVERVIEW_SORTS], required=False)
    dir = forms.ChoiceField(choices=[("asc", "asc"), ("desc", "desc")], required=False)

    def ordering(self) -> tuple[str, bool]:
        if not self.is_valid():
            return "fires", True
        sort = self.cleaned_data["sort"] or "fires"
        direction = self.cleaned_data["dir"] or ("asc" if sort == "name" else "desc")
        return sort, direction == "desc"


class OccurrenceFilterForm(forms.Form):
    """The metadata picked for the breakdown, the occurrence filter and the page of occurrences."""

    key = forms.CharField(required=False, max_length=100, strip=False, label="Metadata key")
    meta_key = forms.CharField(required=False, max_length=100, strip=False, label="Metadata key")
    meta_value = forms.CharField(required=False, max_length=500, strip=False, label="Value")
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("meta_value") and not cleaned.get("meta_key"):
            self.add_error("meta_key", forms.ValidationError("Choose the key to filter on.", code="key_required"))
        return cleaned

    def values(self) -> dict:
        if self.is_valid():
            return self.cleaned_data
        return {"key": "", "meta_key": "", "meta_value": "", "before": None}
