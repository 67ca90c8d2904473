from django import forms

from .metadata_schema import ALLOWED_VALUE_MAX_LENGTH, NAME_MAX_LENGTH, PROPERTY_TYPES, SchemaMode
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

    metadata_schema_mode = forms.ChoiceField(
        label="Metadata schema",
        choices=SchemaMode.choices,
        initial=SchemaMode.OFF,
        required=False,
        help_text="What an occurrence whose metadata breaks the properties below does. Changing it never rewrites "
        "recorded events.",
    )

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            # Once saved, the slug is no longer suggested from the name: live site code depends on it.
            del self.fields["name"].widget.attrs["data-slug-source"]

    def clean_metadata_schema_mode(self):
        # A form posted without it (an older page, a script) keeps the event's mode rather than failing.
        return self.cleaned_data["metadata_schema_mode"] or self.initial.get("metadata_schema_mode") or SchemaMode.OFF


class MetadataPropertyForm(forms.Form):
    """One row of the metadata schema table; a row without a name is ignored. Field-level checks only: the schema's
    rules are custom_events.metadata_schema's."""

    name = forms.CharField(
        required=False, max_length=NAME_MAX_LENGTH, widget=forms.TextInput(attrs={"spellcheck": "false"})
    )
    type = forms.ChoiceField(choices=[(t, t) for t in PROPERTY_TYPES], initial="string")
    required = forms.BooleanField(required=False)
    allowed_values = forms.CharField(
        required=False,
        max_length=100 * (ALLOWED_VALUE_MAX_LENGTH + 2),
        widget=forms.TextInput(attrs={"placeholder": "basic, pro, enterprise"}),
    )

    @staticmethod
    def initial_from(prop: dict) -> dict:
        return {**prop, "allowed_values": ", ".join(prop["allowed_values"])}

    def property(self) -> dict | None:
        data = self.cleaned_data
        if not data.get("name", "").strip():
            return None
        allowed = [value.strip() for value in data["allowed_values"].split(",") if value.strip()]
        return {"name": data["name"], "type": data["type"], "required": data["required"], "allowed_values": allowed}


# Three empty rows under the declared properties: saving with them filled adds properties (three more then appear).
MetadataPropertyFormSet = forms.formset_factory(MetadataPropertyForm, extra=3, max_num=50, absolute_max=50)


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
