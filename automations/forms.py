"""Settings-page forms. They only shape the input: every rule is checked once, by the services (the kinds'
clean_config and conditions.condition_clean), whose errors are shown next to the matching field."""

from django import forms
from django.core.exceptions import ValidationError

from .actions import ActionKind
from .conditions import KEY_MAX_LENGTH, OP_CHOICES, VALUE_MAX_LENGTH
from .models import ActionRun
from .selectors import CONTACT_SEARCH_MAX_LENGTH

# Slack over each setting's own limit, so that an over-long value gets the rule's message, not a generic one.
SLACK = 100


class ActionForm(forms.Form):
    def __init__(self, *args, kind_cls: type[ActionKind], **kwargs):
        super().__init__(*args, **kwargs)
        self.kind_cls = kind_cls
        for setting in kind_cls.settings:
            attrs = {"placeholder": setting.placeholder, "autocomplete": "off"}
            if setting.type == "integer":
                attrs["inputmode"] = "numeric"
            elif setting.type == "url":
                attrs["inputmode"] = "url"
            max_length = setting.max_length if setting.type != "emails" else setting.max_items * 260
            self.fields[setting.name] = forms.CharField(
                label=setting.label,
                required=setting.required,
                max_length=max_length + SLACK,
                help_text=setting.help_text,
                widget=forms.TextInput(attrs=attrs),
            )
        self.fields["condition_key"] = forms.CharField(
            label="Only when metadata key",
            required=False,
            max_length=KEY_MAX_LENGTH + SLACK,
            help_text="Optional: run this action only when the event's metadata passes a test, e.g. planTier.",
            widget=forms.TextInput(attrs={"placeholder": "planTier", "autocomplete": "off"}),
        )
        self.fields["condition_op"] = forms.ChoiceField(label="Test", required=False, choices=OP_CHOICES)
        self.fields["condition_value"] = forms.CharField(
            label="Value",
            required=False,
            max_length=VALUE_MAX_LENGTH + SLACK,
            help_text="Compared as text (numbers for “greater than” and “less than”), e.g. enterprise.",
            widget=forms.TextInput(attrs={"placeholder": "enterprise", "autocomplete": "off"}),
        )
        self.fields["enabled"] = forms.BooleanField(
            label="Enabled", required=False, help_text="Disabled actions are kept but do not run."
        )

    @classmethod
    def initial_for(cls, *, kind_cls: type[ActionKind], config: dict, condition: dict | None, enabled: bool) -> dict:
        initial = {s.name: s.to_form(config.get(s.name)) for s in kind_cls.settings}
        condition = condition or {}
        value = condition.get("value")
        initial.update(
            condition_key=condition.get("key", ""),
            condition_op=condition.get("op", ""),
            condition_value="" if value is None else str(value).lower() if isinstance(value, bool) else str(value),
            enabled=enabled,
        )
        return initial

    def config(self) -> dict:
        return {s.name: self.cleaned_data.get(s.name, "") for s in self.kind_cls.settings}

    def condition(self) -> dict | None:
        key = self.cleaned_data.get("condition_key", "")
        value = self.cleaned_data.get("condition_value", "")
        if not key and not value:
            return None
        return {"key": key, "op": self.cleaned_data.get("condition_op") or "equals", "value": value}

    def add_service_errors(self, exc: ValidationError) -> None:
        """Shows a service's ValidationError next to the fields it names, the rest above the form."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        for field, errors in exc.error_dict.items():
            self.add_error(field if field in self.fields else None, errors)


class RunFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "All statuses"), *ActionRun.Status.choices])
    before = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, widget=forms.HiddenInput)


class ContactSearchForm(forms.Form):
    q = forms.CharField(
        label="Email",
        required=False,
        max_length=CONTACT_SEARCH_MAX_LENGTH,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Search by email, e.g. ada@ or @acme.com", "autocomplete": "off"}
        ),
    )
    anonymous = forms.BooleanField(label="Include anonymous visitors", required=False)
