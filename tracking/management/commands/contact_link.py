from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from paminga.models import Account
from tracking.links import contact_link_make
from tracking.services import contact_get_or_create


class Command(BaseCommand):
    help = (
        "Prints a link to a page of your site that identifies the contact who opens it (adds the signed pm_ct "
        "parameter). The contact is created when the account has none with this email."
    )

    def add_arguments(self, parser):
        parser.add_argument("account_slug")
        parser.add_argument("email")
        parser.add_argument("url", help="An absolute http(s) URL of a page with the beacon installed")

    def handle(self, *args, account_slug, email, url, **options):
        account = Account.objects.filter(slug=account_slug).first()
        if account is None:
            raise CommandError(f"No account with the slug {account_slug!r}.")
        try:
            with transaction.atomic():  # a bad URL leaves no new contact behind
                contact, _ = contact_get_or_create(account=account, email=email)
                link = contact_link_make(contact=contact, url=url)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(link)
