"""The Automations area (an event's actions and run log), the contact pages, and rotating the webhook secret."""

from datetime import UTC

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from custom_events.selectors import custom_event_get_or_404
from paminga.accounts import account_can_manage, account_required
from paminga.services import account_webhook_secret_rotate

from . import privacy, selectors, services
from .actions import REGISTRY, kind_get
from .conditions import condition_describe
from .forms import ActionForm, ContactSearchForm, RunFilterForm
from .models import Action

CONTACTS_PAGE_SIZE = 50


def _kinds():
    return [REGISTRY[value] for value in Action.Kind.values]


def _describe(action: Action) -> dict:
    kind_cls = kind_get(action.kind)
    return {
        "action": action,
        "label": kind_cls.label if kind_cls else action.kind,
        "summary": kind_cls.summary(action.config) if kind_cls else "",
        "condition": condition_describe(action.condition),
    }


@account_required
def event_actions(request, pk: int):
    event = custom_event_get_or_404(account=request.account, pk=pk)
    actions = [_describe(a) for a in selectors.action_list(account=request.account, custom_event=event)]
    context = {
        "event": event,
        "actions": actions,
        "kinds": _kinds(),
        "max_actions": services.MAX_ACTIONS_PER_EVENT,
        "tab": "actions",
    }
    return render(request, "automations/actions.html", context)


@account_required
def action_create(request, pk: int):
    event = custom_event_get_or_404(account=request.account, pk=pk)
    kind_cls = kind_get(request.GET.get("kind", ""))
    if kind_cls is None:
        messages.error(request, "Choose the type of action to add.")
        return redirect("automations:event_actions", pk=event.pk)
    form = ActionForm(request.POST or None, kind_cls=kind_cls, initial={"enabled": True})
    if request.method == "POST" and form.is_valid():
        try:
            services.action_create(
                custom_event=event,
                kind=kind_cls.kind,
                config=form.config(),
                condition=form.condition(),
                enabled=form.cleaned_data["enabled"],
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Action “{kind_cls.label}” added to {event.name}.")
            return redirect("automations:event_actions", pk=event.pk)
    return _action_form(request, event=event, form=form, kind_cls=kind_cls, action=None)


@account_required
def action_update(request, pk: int, action_pk: int):
    event = custom_event_get_or_404(account=request.account, pk=pk)
    action = selectors.action_get_or_404(account=request.account, custom_event=event, pk=action_pk)
    kind_cls = kind_get(action.kind)
    initial = ActionForm.initial_for(
        kind_cls=kind_cls, config=action.config, condition=action.condition, enabled=action.enabled
    )
    form = ActionForm(request.POST or None, kind_cls=kind_cls, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.action_update(
                action=action, config=form.config(), condition=form.condition(), enabled=form.cleaned_data["enabled"]
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Action “{kind_cls.label}” saved.")
            return redirect("automations:event_actions", pk=event.pk)
    return _action_form(request, event=event, form=form, kind_cls=kind_cls, action=action)


def _action_form(request, *, event, form, kind_cls, action):
    context = {
        "event": event,
        "form": form,
        "setting_fields": [form[setting.name] for setting in kind_cls.settings],
        "kind": kind_cls,
        "action": action,
        "creating": action is None,
        "tab": "actions",
    }
    return render(request, "automations/action_form.html", context)


@account_required
def action_delete(request, pk: int, action_pk: int):
    event = custom_event_get_or_404(account=request.account, pk=pk)
    action = selectors.action_get_or_404(account=request.account, custom_event=event, pk=action_pk)
    if request.method == "POST":
        label = _describe(action)["summary"]
        services.action_delete(action=action)
        messages.success(request, f"Action “{label}” deleted.")
        return redirect("automations:event_actions", pk=event.pk)
    context = {"event": event, "item": _describe(action), "run_count": action.runs.count(), "tab": "actions"}
    return render(request, "automations/action_confirm_delete.html", context)


@require_POST
@account_required
def action_toggle(request, pk: int, action_pk: int):
    event = custom_event_get_or_404(account=request.account, pk=pk)
    action = selectors.action_get_or_404(account=request.account, custom_event=event, pk=action_pk)
    services.action_update(action=action, enabled=not action.enabled)
    state = "enabled" if action.enabled else "disabled"
    messages.success(request, f"Action “{_describe(action)['summary']}” {state}.")
    return redirect("automations:event_actions", pk=event.pk)


@require_POST
@account_required
def action_move(request, pk: int, action_pk: int):
    event = custom_event_get_or_404(account=request.account, pk=pk)
    action = selectors.action_get_or_404(account=request.account, custom_event=event, pk=action_pk)
    direction = request.POST.get("direction")
    if direction not in ("up", "down"):
        messages.error(request, "Move an action up or down.")
    else:
        ordered = list(selectors.action_list(account=request.account, custom_event=event).values_list("pk", flat=True))
        index = ordered.index(action.pk)
        services.action_move(action=action, position=index - 1 if direction == "up" else index + 1)
    return redirect("automations:event_actions", pk=event.pk)


@account_required
def event_runs(request, pk: int):
    event = custom_event_get_or_404(account=request.account, pk=pk)
    form = RunFilterForm(request.GET or None)
    status, before = "", None
    if form.is_valid():
        status, before = form.cleaned_data["status"], form.cleaned_data["before"]
    runs, next_before = selectors.action_run_list(
        account=request.account, custom_event=event, status=status, before_id=before
    )
    labels = {value: REGISTRY[value].summary for value in Action.Kind.values}
    rows = [{"run": run, "summary": labels[run.action.kind](run.action.config)} for run in runs]
    context = {
        "event": event,
        "form": form,
        "rows": rows,
        "status": status,
        "next_before": next_before,
        "first_page": not before,
        "tab": "runs",
    }
    return render(request, "automations/runs.html", context)


@require_POST
@account_required
def action_run_retry(request, pk: int, run_pk: int):
    event = custom_event_get_or_404(account=request.account, pk=pk)
    run = selectors.action_run_get_or_404(account=request.account, custom_event=event, pk=run_pk)
    try:
        services.action_run_retry(run=run)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Run {run.pk} queued to run again.")
    return redirect("automations:event_runs", pk=event.pk)


@account_required
def contact_list(request):
    form = ContactSearchForm(request.GET or None)
    query, include_anonymous = "", False
    if form.is_valid():
        query, include_anonymous = form.cleaned_data["q"], form.cleaned_data["anonymous"]
    contacts = selectors.contact_list(account=request.account, query=query, include_anonymous=include_anonymous)
    page = Paginator(contacts, CONTACTS_PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    context = {"form": form, "page": page, "query": query, "params": params.urlencode()}
    return render(request, "automations/contacts/list.html", context)


@account_required
def contact_detail(request, pk: int):
    contact = selectors.contact_get_or_404(account=request.account, pk=pk)
    before = None
    if request.GET.get("before"):
        try:
            before = parse_datetime(request.GET["before"][:64])
        except ValueError:
            before = None
        if before is None:
            raise Http404("Not a valid timeline position.")
        if timezone.is_naive(before):
            before = timezone.make_aware(before, UTC)
        if before.year < 2000:
            raise Http404("Not a valid timeline position.")
    entries, next_before = selectors.contact_timeline(account=request.account, contact=contact, before=before)
    labels = {value: REGISTRY[value].summary for value in Action.Kind.values}
    timeline = [
        {"entry": e, "summary": labels[e.item.action.kind](e.item.action.config) if e.kind == "run" else ""}
        for e in entries
    ]
    fields = sorted((contact.fields or {}).items())
    context = {
        "contact": contact,
        "fields": fields,
        "timeline": timeline,
        "next_before": next_before.isoformat() if next_before else None,
        "first_page": before is None,
    }
    return render(request, "automations/contacts/detail.html", context)


@account_required
def contact_erase(request, pk: int):
    """GET: what erasing the contact deletes, and a confirmation form. POST: erase it (owners and admins)."""
    contact = selectors.contact_get_or_404(account=request.account, pk=pk)
    if not contact.email:
        raise Http404("Anonymous contacts are erased by retention, not by address.")
    can_manage = account_can_manage(request)
    if request.method == "POST":
        if not can_manage:
            messages.error(request, "Only the account's owners and admins can erase a contact.")
            return redirect("contacts:detail", pk=contact.pk)
        privacy.contact_erase(
            account=request.account, email=contact.email, erased_by=privacy.erased_by_label(user=request.user)
        )
        messages.success(request, "The contact and everything recorded about them were erased.")
        return redirect("contacts:list")
    context = {
        "contact": contact,
        "counts": selectors.contact_data_counts(contact=contact),
        "can_manage": can_manage,
    }
    return render(request, "automations/contacts/erase.html", context)


@account_required
def contact_export(request, pk: int):
    """Everything stored about the contact, as a JSON download."""
    contact = selectors.contact_get_or_404(account=request.account, pk=pk)
    if not contact.email:
        raise Http404("Anonymous contacts have no address to export by.")
    document = privacy.contact_export(account=request.account, email=contact.email)
    response = JsonResponse(document, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="contact-{contact.pk}.json"'
    response["Cache-Control"] = "private, no-store"
    return response


@require_POST
@account_required
def webhook_secret_rotate(request):
    if not account_can_manage(request):
        messages.error(request, "Only the account's owners and admins can rotate the webhook signing secret.")
        return redirect("account_settings")
    account_webhook_secret_rotate(account=request.account)
    messages.success(
        request, "New webhook signing secret created. Update your receivers: the old one is no longer used."
    )
    return redirect("account_settings")
