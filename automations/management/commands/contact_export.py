import json

from django.core.management.base import BaseCommand, CommandError

from automations.privacy import ContactNotFound, contact_export
from paminga.models import Account


class Command(BaseCommand):
    help = "Prints everything stored about a contact as one JSON document (what the contact page downloads)."

    def add_arguments(self, parser):
        parser.add_argument("account_slug")
        parser.add_argument("email")

    def handle(self, *args, account_slug, email, **options):
        account = Account.objects.filter(slug=account_slug).first()
        if account is None:
            raise CommandError(f"No account with the slug {account_slug!r}.")
        try:
            document = contact_export(account=account, email=email)
        except ContactNotFound as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(document, indent=2, ensure_ascii=False))
