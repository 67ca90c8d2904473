from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from automations.deletes import background_delete_list
from paminga.accounts import account_required

from . import selectors, services
from .forms import CustomEventForm, MarketingSourceForm


@account_required
def custom_event_list(request):
    events = selectors.custom_event_list(account=request.account)
    deleting = [d for d in background_delete_list(account=request.account) if d.kind == "custom_event"]
    return render(request, "custom_events/list.html", {"events": events, "deleting": deleting})


@account_required
def custom_event_create(request):
    form = CustomEventForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            event = services.custom_event_create(account=request.account, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request, f"Custom event “{event.name}” created. Fire it with $__MA.captureEvent('{event.slug}')."
            )
            return redirect("custom_events:list")
    return render(request, "custom_events/form.html", {"form": form, "creating": True})


@account_required
def custom_event_update(request, pk: int):
    event = selectors.custom_event_get_or_404(account=request.account, pk=pk)
    initial = {f: getattr(event, f) for f in ("name", "slug", "description", "counts_as_conversion")}
    form = CustomEventForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            services.custom_event_update(custom_event=event, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Custom event “{event.name}” saved.")
            return redirect("custom_events:list")
    return render(request, "custom_events/form.html", {"form": form, "event": event, "creating": False})


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
