import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from paminga.models import Account, Membership
from paminga.services import account_create, membership_create, user_get_or_create


class Command(BaseCommand):
    help = "Creates an account (tenant) and prints it as one JSON object, with its public site key."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="Lowercase letters, numbers and hyphens, e.g. acme")
        parser.add_argument("--name", required=True, help="Display name, e.g. 'Acme Inc.'")
        parser.add_argument(
            "--domain",
            action="append",
            default=[],
            dest="domains",
            help="A website host name of the account (repeatable), e.g. www.acme.com",
        )
        parser.add_argument("--time-zone", default="UTC", help="IANA time zone for reports, e.g. Europe/Berlin")
        parser.add_argument("--owner", help="Email of a login to make the account's owner (created if missing)")
        parser.add_argument("--password", help="Password for a newly created owner login")

    def handle(self, *args, slug, name, domains, time_zone, owner, password, **options):
        if Account.objects.filter(slug=slug).exists():
            raise CommandError(f"An account with the slug {slug!r} already exists.")
        try:
            with transaction.atomic():
                account = account_create(name=name, slug=slug, domains=domains, time_zone=time_zone)
                if owner:
                    user = user_get_or_create(email=owner, password=password)
                    membership_create(account=account, user=user, role=Membership.Role.OWNER)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stdout.write(
            json.dumps(
                {
                    "id": account.pk,
                    "slug": account.slug,
                    "name": account.name,
                    "site_key": account.site_key,
                    "domains": account.domains,
                    "time_zone": account.time_zone,
                    "owner": owner.strip().lower() if owner else None,
                }
            )
        )
