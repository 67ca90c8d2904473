"""The action kinds: Action.kind → a small class with its settings and one run() method.

To add a kind, copy one of these modules, add its value to Action.Kind and register the class below.
"""

from .add_tag import AddTag
from .add_to_list import AddToList
from .base import ActionError, ActionKind, PermanentError, RunContext, Setting, TransientError
from .change_score import ChangeScore
from .notify_email import NotifyEmail
from .remove_tag import RemoveTag
from .set_field import SetField
from .webhook import Webhook

REGISTRY: dict[str, type[ActionKind]] = {
    cls.kind: cls for cls in (AddTag, RemoveTag, AddToList, ChangeScore, SetField, NotifyEmail, Webhook)
}


def kind_get(kind: str) -> type[ActionKind] | None:
    return REGISTRY.get(kind)


__all__ = [
    "REGISTRY",
    "ActionError",
    "ActionKind",
    "PermanentError",
    "RunContext",
    "Setting",
    "TransientError",
    "kind_get",
]
