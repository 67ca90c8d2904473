"""The optional condition on an action: a test of one metadata value that must hold for the action to run.

Stored on Action.condition as {"key": "planTier", "op": "equals", "value": "enterprise"} (or null for "always").
`condition_clean` is the one validation, used by the settings pages and GraphQL alike; its errors are keyed
`condition_key`, `condition_op` and `condition_value`, the names of the form fields.
"""

import json
import math

from django.core.exceptions import ValidationError

KEY_MAX_LENGTH = 100
VALUE_MAX_LENGTH = 500


class Op:
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    GREATER_THAN = "greater_than"
    LESS_THAN = "less_than"
    EXISTS = "exists"
    NOT_EXISTS = "not_exists"


OP_CHOICES = [
    (Op.EQUALS, "equals"),
    (Op.NOT_EQUALS, "does not equal"),
    (Op.CONTAINS, "contains"),
    (Op.GREATER_THAN, "is greater than"),
    (Op.LESS_THAN, "is less than"),
    (Op.EXISTS, "is present"),
    (Op.NOT_EXISTS, "is absent"),
]
OP_LABELS = dict(OP_CHOICES)
NUMERIC_OPS = frozenset({Op.GREATER_THAN, Op.LESS_THAN})
VALUELESS_OPS = frozenset({Op.EXISTS, Op.NOT_EXISTS})


def _number(value) -> float | None:
    """A finite number from a JSON number or a numeric string; None otherwise (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _text(value) -> str:
    """How a metadata value compares with the condition's text: strings as they are, anything else as JSON
    (so the condition value "87" matches the number 87 and "true" matches true)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def condition_clean(condition) -> dict | None:
    """The stored form of a condition, or ValidationError keyed by condition_key / condition_op / condition_value.

    None, an empty dict, or a dict whose fields are all empty mean "no condition"."""
    if condition is None:
        return None
    if not isinstance(condition, dict):
        raise ValidationError(
            {"condition_key": ValidationError("The condition must be an object with key, op and value.", "invalid")}
        )
    unknown = sorted(set(condition) - {"key", "op", "value"})
    if unknown:
        raise ValidationError(
            {
                "condition_key": ValidationError(
                    "Unknown condition setting %(names)s: use key, op and value.",
                    code="unknown_setting",
                    params={"names": ", ".join(unknown)},
                )
            }
        )
    key, op, value = condition.get("key"), condition.get("op"), condition.get("value")
    if all(v is None or v == "" for v in (key, op, value)):
        return None
    errors: dict[str, ValidationError] = {}
    if not isinstance(key, str) or not key.strip():
        errors["condition_key"] = ValidationError("Enter the metadata key to test, e.g. planTier.", "required")
    elif len(key.strip()) > KEY_MAX_LENGTH:
        errors["condition_key"] = ValidationError(
            "The metadata key can be at most %(max)d characters.", "too_long", params={"max": KEY_MAX_LENGTH}
        )
    op = op or Op.EQUALS
    if op not in OP_LABELS:
        errors["condition_op"] = ValidationError(
            "Choose one of: %(ops)s.", "invalid_choice", params={"ops": ", ".join(OP_LABELS)}
        )
    elif op in VALUELESS_OPS:
        value = None
    elif value is None or value == "":
        errors["condition_value"] = ValidationError("Enter the value to compare with.", "required")
    elif isinstance(value, dict | list):
        errors["condition_value"] = ValidationError("The value must be text, a number or true/false.", "invalid")
    elif len(_text(value)) > VALUE_MAX_LENGTH:
        errors["condition_value"] = ValidationError(
            "The value can be at most %(max)d characters.", "too_long", params={"max": VALUE_MAX_LENGTH}
        )
    elif op in NUMERIC_OPS and _number(value) is None:
        errors["condition_value"] = ValidationError("“%(op)s” needs a number.", "not_a_number", params={"op": op})
    if errors:
        raise ValidationError(errors)
    if isinstance(value, str):
        value = value.strip()
    return {"key": key.strip(), "op": op, "value": value}


def condition_matches(condition: dict | None, metadata) -> bool:
    """Whether the (cleaned) condition holds for an event's metadata. No condition always holds; an event without
    metadata (none sent, or dropped for size) has no keys."""
    if not condition:
        return True
    present = isinstance(metadata, dict) and condition["key"] in metadata
    actual = metadata[condition["key"]] if present else None
    op, expected = condition["op"], condition.get("value")
    if op == Op.EXISTS:
        return present
    if op == Op.NOT_EXISTS:
        return not present
    if op == Op.NOT_EQUALS:
        return not present or _text(actual) != _text(expected)
    if not present:
        return False
    if op == Op.EQUALS:
        return _text(actual) == _text(expected)
    if op == Op.CONTAINS:
        if isinstance(actual, list):
            return any(_text(item) == _text(expected) for item in actual)
        return isinstance(actual, str) and _text(expected) in actual
    left, right = _number(actual), _number(expected)
    if left is None or right is None:
        return False
    return left > right if op == Op.GREATER_THAN else left < right


def condition_describe(condition: dict | None) -> str:
    """The condition in words, for pages and the run log: `planTier equals “enterprise”`."""
    if not condition:
        return ""
    words = f"{condition['key']} {OP_LABELS.get(condition['op'], condition['op'])}"
    if condition["op"] in VALUELESS_OPS:
        return words
    return f"{words} “{_text(condition.get('value'))}”"
