"""A custom event's metadata schema: the properties its metadata is expected to have, and what happens to an
occurrence whose metadata breaks it (docs/tracking.md, "Metadata schemas").

A schema is a list of properties, stored as JSON on the definition (CustomEvent.metadata_schema):

    [{"name": "planTier", "type": "string", "required": true, "allowed_values": ["basic", "pro", "enterprise"]},
     {"name": "percentWatched", "type": "number", "required": false, "allowed_values": []}]

Properties the schema does not declare are not checked. The mode (CustomEvent.metadata_schema_mode) says what a
violation does: `off` nothing, `warn` records the event with its metadata and lists the violation in the event
debugger, `enforce` the same without the metadata (beacon) or refuses the call (API, INVALID_METADATA).

`metadata_violations` is the one check, used by capture (the API's refusal, before anything is queued) and by the
ingester (the beacon's hits).
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import models

PROPERTY_TYPES = ("string", "number", "boolean", "string list")
PROPERTIES_MAX = 50
NAME_MAX_LENGTH = 100
ALLOWED_VALUES_MAX = 100
ALLOWED_VALUE_MAX_LENGTH = 200

# The event debugger's reason for a violation (tracking.models.RejectedHit.Reason.METADATA_SCHEMA is this value):
# the event's page lists its entries.
DEBUGGER_REASON = "METADATA_SCHEMA"


class SchemaMode(models.TextChoices):
    OFF = "off", "Off: not checked"
    WARN = "warn", "Warn: record, and list each violation"
    ENFORCE = "enforce", "Enforce: drop the metadata (beacon) or refuse the call (API)"


@dataclass(frozen=True)
class Violation:
    """One property of the metadata at fault, and why, in words for the developer who sent it."""

    property: str
    message: str

    @property
    def field(self) -> str:
        """Where the API reports it: `extensions.field`, e.g. "metadata.planTier"."""
        return f"metadata.{self.property}"


def _invalid(message: str, **params) -> ValidationError:
    return ValidationError(message, code="invalid_metadata_schema", params=params or None)


def metadata_schema_normalize(value) -> list[dict]:
    """The schema in its stored form (every key present, allowed values only for strings), or ValidationError. The
    settings form, the GraphQL API and the model's validator all come through here."""
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise _invalid("The metadata schema must be a list of properties.")
    if len(value) > PROPERTIES_MAX:
        raise _invalid("A metadata schema has at most %(max)d properties.", max=PROPERTIES_MAX)
    properties, names = [], set()
    for item in value:
        if not isinstance(item, dict):
            raise _invalid("Each property of a metadata schema is an object with a name and a type.")
        unknown = set(item) - {"name", "type", "required", "allowed_values"}
        if unknown:
            raise _invalid("Unknown key “%(key)s” in a metadata property.", key=sorted(unknown)[0])
        name = item.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_LENGTH or "\x00" in name:
            raise _invalid("Each property needs a name of 1 to %(max)d characters.", max=NAME_MAX_LENGTH)
        name = name.strip()
        if name in names:
            raise _invalid("The property “%(name)s” is declared twice.", name=name)
        names.add(name)
        kind = item.get("type")
        if kind not in PROPERTY_TYPES:
            raise _invalid("“%(name)s”: the type must be one of %(types)s.", name=name, types=", ".join(PROPERTY_TYPES))
        required = item.get("required", False)
        if not isinstance(required, bool):
            raise _invalid("“%(name)s”: required must be true or false.", name=name)
        allowed = item.get("allowed_values") or []
        if not isinstance(allowed, list) or not all(isinstance(v, str) for v in allowed):
            raise _invalid("“%(name)s”: allowed values must be a list of strings.", name=name)
        if allowed and kind not in ("string", "string list"):
            raise _invalid("“%(name)s”: only string properties can list allowed values.", name=name)
        if len(allowed) > ALLOWED_VALUES_MAX or any(len(v) > ALLOWED_VALUE_MAX_LENGTH or "\x00" in v for v in allowed):
            raise _invalid(
                "“%(name)s”: at most %(count)d allowed values of at most %(length)d characters each.",
                name=name,
                count=ALLOWED_VALUES_MAX,
                length=ALLOWED_VALUE_MAX_LENGTH,
            )
        allowed = list(dict.fromkeys(allowed))
        properties.append({"name": name, "type": kind, "required": required, "allowed_values": allowed})
    return properties


def validate_metadata_schema(value) -> None:
    metadata_schema_normalize(value)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "string list": lambda v: isinstance(v, list) and all(isinstance(item, str) for item in v),
}


def _shown(value) -> str:
    text = repr(value) if not isinstance(value, str) else f"“{value}”"
    return text if len(text) <= 60 else text[:57] + "…"


def metadata_violations(schema: list[dict], metadata: dict | None) -> list[Violation]:
    """Each declared property the metadata breaks, in the schema's order: a required one missing (or null), a value
    of another type, a string (or an item of a string list) that is not one of the allowed values."""
    metadata = metadata if isinstance(metadata, dict) else {}
    violations = []
    for prop in schema:
        name, kind = prop["name"], prop["type"]
        value = metadata.get(name)
        if value is None:
            if prop["required"]:
                violations.append(Violation(name, f"{name} is required and missing."))
            continue
        if not _TYPE_CHECKS[kind](value):
            violations.append(Violation(name, f"{name} must be a {kind}, not {_shown(value)}."))
            continue
        allowed = prop["allowed_values"]
        if allowed:
            wrong = [v for v in (value if kind == "string list" else [value]) if v not in allowed]
            if wrong:
                violations.append(
                    Violation(name, f"{name} is {_shown(wrong[0])}, not one of {', '.join(allowed)}."[:300])
                )
    return violations


def custom_event_metadata_violations(*, custom_event, metadata) -> list[Violation]:
    """The violations of an occurrence's metadata that count: none while the event's schema mode is off."""
    if custom_event.metadata_schema_mode == SchemaMode.OFF or not custom_event.metadata_schema:
        return []
    return metadata_violations(custom_event.metadata_schema, metadata)


def metadata_violations_message(violations: list[Violation]) -> str:
    return " ".join(v.message for v in violations)


def metadata_schema_refusal(*, custom_event, metadata) -> ValidationError | None:
    """The API's refusal of metadata that breaks an enforced schema (INVALID_METADATA, on the first property at
    fault, e.g. "metadata.planTier"), or None."""
    if custom_event.metadata_schema_mode != SchemaMode.ENFORCE:
        return None
    violations = custom_event_metadata_violations(custom_event=custom_event, metadata=metadata)
    if not violations:
        return None
    message = f"The metadata breaks the event's schema: {metadata_violations_message(violations)}"
    return ValidationError({violations[0].field: ValidationError(message, code="metadata_schema")})
