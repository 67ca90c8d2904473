import re

from django.core.exceptions import ValidationError

from tracking.models import Contact

from ..models import Action
from .base import ActionKind, PermanentError, RunContext, Setting

FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
MAX_FIELDS_PER_CONTACT = 100


class SetField(ActionKind):
    kind = Action.Kind.SET_FIELD
    label = "Set a contact field"
    description = "Set one of the contact's fields (e.g. plan = enterprise), replacing any earlier value."
    # Waits for identification: on a merge the known contact's values win, so the new value could be lost.
    requires_known_contact = True
    settings = (
        Setting(
            name="field",
            label="Field",
            max_length=64,
            help_text="Letters, digits, and _ . - (starting with a letter), e.g. plan or lifecycle_stage.",
            placeholder="lifecycle_stage",
        ),
        Setting(name="value", label="Value", max_length=1000, help_text="Up to 1,000 characters.", placeholder="lead"),
    )

    @classmethod
    def validate(cls, config: dict) -> None:
        if not FIELD_NAME.match(config["field"]):
            raise ValidationError(
                {
                    "field": ValidationError(
                        "Use letters, digits, _ . and - only, starting with a letter.", code="invalid_field_name"
                    )
                }
            )

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Set {config.get('field', '')} = “{config.get('value', '')}”"

    def run(self, ctx: RunContext) -> str:
        name, value = self.config["field"], self.config["value"]
        # Locked: fields is one JSON document, and two runs writing different keys must not lose either.
        contact = Contact.objects.select_for_update().only("pk", "fields").get(pk=ctx.contact.pk)
        fields = dict(contact.fields or {})
        if name not in fields and len(fields) >= MAX_FIELDS_PER_CONTACT:
            raise PermanentError(f"The contact already has {MAX_FIELDS_PER_CONTACT} fields, the most it can have.")
        if fields.get(name) == value:
            return f"{name} was already “{value}”"
        fields[name] = value
        contact.fields = fields
        contact.save(update_fields=["fields"])
        return f"Set {name} = “{value}”"
