from tracking.models import ContactTag

from ..models import Action
from .add_tag import TAG_SETTING
from .base import ActionKind, RunContext


class RemoveTag(ActionKind):
    kind = Action.Kind.REMOVE_TAG
    label = "Remove a tag"
    description = "Remove a tag from the contact. Removing a tag the contact does not have changes nothing."
    # Waits for identification: removing the tag from the anonymous record would leave it on the known contact.
    requires_known_contact = True
    settings = (TAG_SETTING,)

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Remove tag “{config.get('tag', '')}”"

    def run(self, ctx: RunContext) -> str:
        tag = self.config["tag"]
        deleted, _ = ContactTag.objects.filter(contact=ctx.contact, name=tag).delete()
        return f"Removed tag “{tag}”" if deleted else f"Tag “{tag}” was not set"
