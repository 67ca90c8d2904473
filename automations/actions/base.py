"""What every action kind shares: its settings (declared once, validated once), its errors, and what a run sees.

A kind is a small class: `settings` (the configuration it takes, with limits), an optional `validate()` for rules
across settings, and one `run()` that applies the effect and returns what it did in words. `run()` raises
PermanentError when retrying cannot help (a 4xx, a refused address) and TransientError when it can (a timeout,
a 5xx); the runner records the outcome and schedules retries.
"""

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from tracking.models import Contact, EventRecord
from tracking.services import email_normalize

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class ActionError(Exception):
    """A run failed; the message is shown in the run log."""


class PermanentError(ActionError):
    """Retrying cannot help: the run fails at once."""


class TransientError(ActionError):
    """The same run may succeed later: it is retried with backoff, up to the attempt limit."""


@dataclass(frozen=True)
class Setting:
    """One configuration value of a kind: its type, its limits, and how the settings page labels it.

    Types: "text" (one line), "integer", "emails" (a list of addresses; a comma/newline-separated string is
    accepted too), "url" (http or https)."""

    name: str
    label: str
    type: str = "text"
    required: bool = True
    max_length: int = 200
    min_value: int | None = None
    max_value: int | None = None
    max_items: int = 10
    default: Any = None
    help_text: str = ""
    placeholder: str = ""

    def clean(self, value):
        """The stored value, or ValidationError with a code the tests and the API can rely on."""
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "" or value == []:
            if self.required:
                raise ValidationError("Enter %(label)s.", code="required", params={"label": self.label.lower()})
            return self.default
        return getattr(self, f"_clean_{self.type}")(value)

    def _clean_text(self, value) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValidationError("%(label)s must be text.", code="invalid", params={"label": self.label})
        value = str(value).strip()
        if len(value) > self.max_length:
            raise ValidationError(
                "%(label)s can be at most %(max)d characters.",
                code="too_long",
                params={"label": self.label, "max": self.max_length},
            )
        if _CONTROL_CHARACTERS.search(value):
            raise ValidationError(
                "%(label)s cannot contain line breaks or control characters.",
                code="control_characters",
                params={"label": self.label},
            )
        return value

    def _clean_integer(self, value) -> int:
        if isinstance(value, bool):
            value = None
        elif isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,12}", value):
            value = int(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ValidationError("%(label)s must be a whole number.", code="not_integer", params={"label": self.label})
        if (self.min_value is not None and value < self.min_value) or (
            self.max_value is not None and value > self.max_value
        ):
            raise ValidationError(
                "%(label)s must be between %(min)d and %(max)d.",
                code="out_of_range",
                params={"label": self.label, "min": self.min_value, "max": self.max_value},
            )
        return value

    def _clean_emails(self, value) -> list[str]:
        if isinstance(value, str):
            if len(value) > self.max_items * 260:
                raise ValidationError("Too many addresses.", code="too_many")
            value = [part for part in re.split(r"[\s,;]+", value) if part]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValidationError("Give a list of email addresses.", code="invalid")
        emails: list[str] = []
        for item in value:
            try:
                email = email_normalize(item)
            except ValidationError:
                raise ValidationError(
                    "“%(email)s” is not a valid email address.", code="invalid_email", params={"email": item[:254]}
                ) from None
            if email not in emails:
                emails.append(email)
        if not emails and self.required:
            raise ValidationError("Enter %(label)s.", code="required", params={"label": self.label.lower()})
        if len(emails) > self.max_items:
            raise ValidationError("At most %(max)d addresses.", code="too_many", params={"max": self.max_items})
        return emails

    def _clean_url(self, value) -> str:
        value = self._clean_text(value)
        try:
            URLValidator(schemes=["http", "https"])(value)
        except ValidationError:
            raise ValidationError(
                "Enter a full http:// or https:// URL, e.g. https://example.com/hooks/paminga.", code="invalid_url"
            ) from None
        if "@" in value.split("//", 1)[1].split("/", 1)[0]:
            raise ValidationError(
                "Credentials in the URL are not supported: verify requests with the signature header instead.",
                code="invalid_url",
            )
        return value

    def to_form(self, value) -> str:
        """How a stored value appears in the settings form."""
        if value is None:
            return ""
        if isinstance(value, list):
            return ", ".join(value)
        return str(value)


@dataclass
class RunContext:
    """What a run works on, loaded fresh when it runs."""

    run: Any  # automations.models.ActionRun, with action, account and the event record loaded
    event_record: EventRecord
    contact: Contact

    @property
    def account(self):
        return self.run.account

    @property
    def custom_event(self):
        return self.event_record.custom_event

    @property
    def metadata(self):
        return self.event_record.metadata


class ActionKind:
    kind: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    settings: ClassVar[tuple[Setting, ...]] = ()
    # True: the effect is a database write made in the same transaction that marks the run succeeded, so it is
    # applied exactly once. False: the effect leaves the database (email, HTTP); delivered at least once.
    transactional: ClassVar[bool] = True
    # True: an anonymous visitor's run waits until the visitor is identified (see docs/automations.md). Only kinds
    # whose effect survives the merge into the known contact unchanged (adding a tag, a list, points) run at once.
    requires_known_contact: ClassVar[bool] = True
    # Templates receive the class itself (to list kinds and label forms): it must not be called.
    do_not_call_in_templates: ClassVar[bool] = True

    def __init__(self, config: dict):
        self.config = config

    @classmethod
    def clean_config(cls, config) -> dict:
        """The stored configuration, or ValidationError keyed by setting name. One validation for every caller."""
        if not isinstance(config, dict):
            raise ValidationError({"config": ValidationError("The configuration must be an object.", code="invalid")})
        known = {s.name for s in cls.settings}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValidationError(
                {
                    "config": ValidationError(
                        "Unknown setting %(names)s for “%(kind)s” (it takes: %(known)s).",
                        code="unknown_setting",
                        params={"names": ", ".join(unknown)[:200], "kind": cls.label, "known": ", ".join(known)},
                    )
                }
            )
        cleaned: dict = {}
        errors: dict[str, ValidationError] = {}
        for setting in cls.settings:
            try:
                value = setting.clean(config.get(setting.name))
            except ValidationError as exc:
                errors[setting.name] = exc
            else:
                if value is not None:
                    cleaned[setting.name] = value
        if not errors:
            try:
                cls.validate(cleaned)
            except ValidationError as exc:
                raise ValidationError(exc.update_error_dict({})) from None
        if errors:
            raise ValidationError(errors)
        return cleaned

    @classmethod
    def validate(cls, config: dict) -> None:
        """Rules beyond one setting's type and limits; raise ValidationError({setting: ...})."""

    @classmethod
    def summary(cls, config: dict) -> str:
        """The configured action in words, for lists: `Add tag “vip”`."""
        return cls.label

    def run(self, ctx: RunContext) -> str:
        raise NotImplementedError
