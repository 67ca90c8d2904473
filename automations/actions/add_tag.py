from tracking.models import ContactTag

from ..models import Action
from .base import ActionKind, PermanentError, RunContext, Setting

TAG_SETTING = Setting(
    name="tag",
    label="Tag",
    max_length=ContactTag._meta.get_field("name").max_length,
    help_text="Up to 100 characters, e.g. watched-demo or Enterprise lead.",
    placeholder="watched-demo",
)
# A runaway automation must not grow one contact without bound.
MAX_TAGS_PER_CONTACT = 500


class AddTag(ActionKind):
    kind = Action.Kind.ADD_TAG
    label = "Add a tag"
    description = "Tag the contact, e.g. watched-demo. Adding a tag the contact already has changes nothing."
    # Additive: it runs for anonymous visitors too, and identification carries it over (tracking.contact_merge).
    requires_known_contact = False
    settings = (TAG_SETTING,)

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Add tag “{config.get('tag', '')}”"

    def run(self, ctx: RunContext) -> str:
        tag = self.config["tag"]
        existing = set(ContactTag.objects.filter(contact=ctx.contact).values_list("name", flat=True))
        if tag in existing:
            return f"Already tagged “{tag}”"
        if len(existing) >= MAX_TAGS_PER_CONTACT:
            raise PermanentError(f"The contact already has {MAX_TAGS_PER_CONTACT} tags, the most a contact can have.")
        # A concurrent run adding the same tag wins the unique constraint; this one then changes nothing.
        ContactTag.objects.bulk_create([ContactTag(contact=ctx.contact, name=tag)], ignore_conflicts=True)
        return f"Added tag “{tag}”"
