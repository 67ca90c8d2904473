from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from automations.deletes import background_delete_list
from paminga.accounts import account_required

from . import selectors, services
from .forms import CustomEventForm, MarketingSourceForm, MetadataPropertyForm, MetadataPropertyFormSet

SCHEMA_PREFIX = "schema"
# How many of the event's latest schema violations its page lists (from the event debugger).
VIOLATIONS_SHOWN = 20


@account_required
def custom_event_list(request):
    events = selectors.custom_event_list(account=request.account)
    deleting = [d for d in background_delete_list(account=request.account) if d.kind == "custom_event"]
    return render(request, "custom_events/list.html", {"events": events, "deleting": deleting})


def _schema_formset(request, schema: list[dict]):
    """The metadata schema's rows, bound to the POST when it has them: a form posted without (an older page, a
    script) leaves the schema as it is."""
    initial = [MetadataPropertyForm.initial_from(prop) for prop in schema]
    bound = request.method == "POST" and f"{SCHEMA_PREFIX}-TOTAL_FORMS" in request.POST
    return MetadataPropertyFormSet(request.POST if bound else None, initial=initial, prefix=SCHEMA_PREFIX)


def _posted(form, formset) -> dict | None:
    """The fields to save, or None when the form or the schema rows are invalid."""
    if not (form.is_valid() and (not formset.is_bound or formset.is_valid())):
        return None
    fields = dict(form.cleaned_data)
    if formset.is_bound:
        fields["metadata_schema"] = [p for p in (row.property() for row in formset) if p is not None]
    return fields


def _errors_add(form, exc: ValidationError) -> None:
    """The service's errors on the form's fields, and the others (the schema's) above the form."""
    for field, errors in exc.update_error_dict({}).items():
        form.add_error(field if field in form.fields else None, errors)


@account_required
def custom_event_create(request):
    form = CustomEventForm(request.POST or None)
    formset = _schema_formset(request, [])
    if request.method == "POST" and (fields := _posted(form, formset)) is not None:
        try:
            event = services.custom_event_create(account=request.account, **fields)
        except ValidationError as exc:
            _errors_add(form, exc)
        else:
            messages.success(
                request, f"Custom event “{event.name}” created. Fire it with $__MA.captureEvent('{event.slug}')."
            )
            return redirect("custom_events:list")
    return render(request, "custom_events/form.html", {"form": form, "schema": formset, "creating": True})


@account_required
def custom_event_update(request, pk: int):
    event = selectors.custom_event_get_or_404(account=request.account, pk=pk)
    fields = ("name", "slug", "description", "counts_as_conversion", "metadata_schema_mode")
    form = CustomEventForm(request.POST or None, initial={f: getattr(event, f) for f in fields}, editing=True)
    formset = _schema_formset(request, event.metadata_schema)
    if request.method == "POST" and (changes := _posted(form, formset)) is not None:
        try:
            services.custom_event_update(custom_event=event, **changes)
        except ValidationError as exc:
            _errors_add(form, exc)
        else:
            messages.success(request, f"Custom event “{event.name}” saved.")
            return redirect("custom_events:list")
    violations = selectors.custom_event_violations(account=request.account, custom_event=event, limit=VIOLATIONS_SHOWN)
    context = {"form": form, "schema": formset, "event": event, "creating": False, "violations": violations}
    return render(request, "custom_events/form.html", context)


@account_required
def custom_event_delete(request, pk: int):
    event = selectors.custom_event_get_or_404(account=request.account, pk=pk)
    if request.method == "POST":
        name = event.name
        services.custom_event_delete(custom_event=event)
        messages.success(
            request, f"Custom event “{name}” deleted. Its recorded occurrences are removed in the background."
        )
        return redirect("custom_events:list")
    context = {
        "event": event,
        "record_count": event.records.count(),
        "action_count": event.actions.count(),
    }
    return render(request, "custom_events/confirm_delete.html", context)


# --- Marketing sources ------------------------------------------------------------------------------------------


@account_required
def marketing_source_list(request):
    context = {
        "sources": selectors.marketing_source_list(account=request.account),
        "unmatched": selectors.marketing_source_unmatched_names(account=request.account),
        "deleting": [d for d in background_delete_list(account=request.account) if d.kind == "marketing_source"],
    }
    if not context["unmatched"]:
        context["named_events"] = selectors.marketing_source_named_event_count(account=request.account)
    return render(request, "custom_events/marketing_sources.html", context)


@account_required
def marketing_source_create(request):
    # ?name= prefills the form from the list of unmatched source names.
    form = MarketingSourceForm(request.POST or None, initial={"name": request.GET.get("name", "")[:200]})
    if request.method == "POST" and form.is_valid():
        try:
            source = services.marketing_source_create(account=request.account, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Marketing source “{source.name}” created.")
            return redirect("marketing_sources:list")
    return render(request, "custom_events/marketing_source_form.html", {"form": form, "creating": True})


@account_required
def marketing_source_update(request, pk: int):
    source = selectors.marketing_source_get_or_404(account=request.account, pk=pk)
    form = MarketingSourceForm(request.POST or None, initial={"name": source.name, "channel": source.channel})
    if request.method == "POST" and form.is_valid():
        try:
            services.marketing_source_update(marketing_source=source, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Marketing source “{source.name}” saved.")
            return redirect("marketing_sources:list")
    return render(request, "custom_events/marketing_source_form.html", {"form": form, "source": source})


@account_required
def marketing_source_delete(request, pk: int):
    source = selectors.marketing_source_get_or_404(account=request.account, pk=pk)
    if request.method == "POST":
        services.marketing_source_delete(marketing_source=source)
        messages.success(request, f"Marketing source “{source.name}” deleted.")
        return redirect("marketing_sources:list")
    return render(request, "custom_events/marketing_source_delete.html", {"source": source})
