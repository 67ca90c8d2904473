import json

from django.core.management.base import BaseCommand, CommandError

from automations.privacy import ContactNotFound, contact_erase, erased_by_label
from paminga.models import Account


class Command(BaseCommand):
    help = (
        "Erases a contact and everything recorded about them (visitors, visits, page views, events, action runs), "
        "in one transaction. Prints how many rows of each kind went. The audit entry names 'command' as who asked."
    )

    def add_arguments(self, parser):
        parser.add_argument("account_slug")
        parser.add_argument("email")

    def handle(self, *args, account_slug, email, **options):
        account = Account.objects.filter(slug=account_slug).first()
        if account is None:
            raise CommandError(f"No account with the slug {account_slug!r}.")
        try:
            result = contact_erase(account=account, email=email, erased_by=erased_by_label())
        except ContactNotFound as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps({"erased": True, "counts": result.counts}))
