import zoneinfo

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from .models import Account, validate_domains


class DomainsField(forms.CharField):
    """One host name per line (or comma-separated), stored as a list."""

    widget = forms.Textarea(attrs={"rows": 4, "placeholder": "example.com\n*.example.com"})

    def to_python(self, value):
        value = super().to_python(value) or ""
        domains = []
        for part in value.replace(",", "\n").splitlines():
            part = part.strip().lower()
            for scheme in ("https://", "http://"):
                if part.startswith(scheme):
                    part = part[len(scheme) :]
            part = part.rstrip("/")
            if part and part not in domains:
                domains.append(part)
        return domains

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(value)
        return value

    def validate(self, value):
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        validate_domains(value)


class AccountSettingsForm(forms.ModelForm):
    domains = DomainsField(required=False, max_length=5000, help_text=Account._meta.get_field("domains").help_text)
    time_zone = forms.ChoiceField(choices=[])

    class Meta:
        model = Account
        fields = list(Account.SETTINGS_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(tz, tz) for tz in sorted(zoneinfo.available_timezones())]
        # The privacy settings came after the others: a form posted without them (an older page still open, a
        # script) keeps the account's current values instead of failing.
        for name in ("tracking_consent", "retention_months"):
            self.fields[name].required = False

    def clean_tracking_consent(self):
        return self.cleaned_data["tracking_consent"] or self.instance.tracking_consent

    def clean_retention_months(self):
        value = self.cleaned_data["retention_months"]
        return self.instance.retention_months if value is None else value


class FirstPartyPathForm(forms.Form):
    """The address of the path on the customer's own site that its proxy forwards to Paminga, for the first-party
    install snippet (docs/tracking.md, "First-party path"). Only shown, never stored."""

    first_party = forms.URLField(
        label="Path on your site",
        max_length=500,
        assume_scheme="https",
        help_text="The address your web server or CDN forwards to Paminga, e.g. https://www.example.com/pm",
        widget=forms.URLInput(attrs={"placeholder": "https://www.example.com/pm", "autocomplete": "off"}),
    )

    def clean_first_party(self):
        url = self.cleaned_data["first_party"]
        if not url.startswith(("https://", "http://")) or "?" in url or "#" in url:
            raise forms.ValidationError("Enter an http or https address without a query or fragment.")
        return url.rstrip("/")


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the key is for, e.g. “CRM sync” or “Mobile app backend”, so you know which one to revoke.",
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"}),
    )


class LoginForm(AuthenticationForm):
    """Django's login form; people log in with their email address (their user name), so it says so."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "Email"
        self.fields["username"].widget.attrs.update({"autocomplete": "email", "inputmode": "email"})
