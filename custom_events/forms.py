from django import forms

from .models import SLUG_MAX_LENGTH, MarketingChannel, validate_custom_event_slug


class CustomEventForm(forms.Form):
    """Field-level checks only; the service runs the model's full validation (uniqueness included)."""

    name = forms.CharField(
        max_length=200,
        help_text="The display label, e.g. Watched Product Video.",
        widget=forms.TextInput(attrs={"autofocus": True, "data-slug-source": "id_slug"}),
    )
    slug = forms.CharField(
        # A little slack so that an over-long slug gets the rule's own message rather than a generic one.
        max_length=SLUG_MAX_LENGTH + 100,
        validators=[validate_custom_event_slug],
        help_text="What your site passes to $__MA.captureEvent(): lowercase letters, numbers and hyphens.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off", "pattern": "[a-z0-9-]+"}),
    )
    description = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Optional: what this event means and when it fires.",
    )
    counts_as_conversion = forms.BooleanField(
        required=False,
        label="Counts as conversion",
        help_text="Marks each firing as a conversion, attributed to the most recent impression in the "
        "visitor's current session.",
    )

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            # Once saved, the slug is no longer suggested from the name: live site code depends on it.
            del self.fields["name"].widget.attrs["data-slug-source"]


class MarketingSourceForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        help_text="As integrations send it in the API's marketing_source (matched ignoring case), "
        "e.g. “Partner Newsletter”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    channel = forms.ChoiceField(
        choices=MarketingChannel.choices,
        initial=MarketingChannel.UNKNOWN,
        help_text="The channel recorded for an event from this source when the event names no channel itself.",
    )
