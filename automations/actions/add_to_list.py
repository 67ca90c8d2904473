from tracking.models import ContactList, ContactListMembership

from ..models import Action
from .base import ActionKind, PermanentError, RunContext, Setting

# Lists are created by name on first use; this bounds how many one account's automations can create.
MAX_LISTS_PER_ACCOUNT = 1000


class AddToList(ActionKind):
    kind = Action.Kind.ADD_TO_LIST
    label = "Add to a list"
    description = "Add the contact to a list (created by name the first time it is used)."
    # Additive: it runs for anonymous visitors too, and identification carries it over (tracking.contact_merge).
    requires_known_contact = False
    settings = (
        Setting(
            name="list",
            label="List",
            max_length=ContactList._meta.get_field("name").max_length,
            help_text="The list's name, e.g. Demo requests. A list with this name is created if there is none.",
            placeholder="Demo requests",
        ),
    )

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Add to list “{config.get('list', '')}”"

    def run(self, ctx: RunContext) -> str:
        name = self.config["list"]
        contact_list = ContactList.objects.filter(account=ctx.account, name=name).first()
        if contact_list is None:
            if ContactList.objects.filter(account=ctx.account).count() >= MAX_LISTS_PER_ACCOUNT:
                raise PermanentError(f"The account already has {MAX_LISTS_PER_ACCOUNT} lists, the most it can have.")
            contact_list, _ = ContactList.objects.get_or_create(account=ctx.account, name=name)
        _, created = ContactListMembership.objects.get_or_create(contact_list=contact_list, contact=ctx.contact)
        return f"Added to list “{name}”" if created else f"Already in list “{name}”"
