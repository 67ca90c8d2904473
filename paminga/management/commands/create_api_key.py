import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from paminga.models import Account
from paminga.services import api_key_create


class Command(BaseCommand):
    help = "Creates a GraphQL API key for an account and prints its secret once (only a hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("account_slug")
        parser.add_argument("--name", required=True, help="What the key is for, e.g. 'CRM sync'")
        parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text")

    def handle(self, *args, account_slug, name, json: bool = False, **options):
        account = Account.objects.filter(slug=account_slug).first()
        if account is None:
            raise CommandError(f"No account with the slug {account_slug!r}.")
        try:
            api_key, secret = api_key_create(account=account, name=name)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        if json:
            self.stdout.write(
                _dumps({"account": account.slug, "name": api_key.name, "prefix": api_key.prefix, "key": secret})
            )
            return
        self.stdout.write(secret)
        self.stderr.write(
            f"API key “{api_key.name}” for {account.slug} (prefix {api_key.prefix}). "
            "This is the only time the key is shown: store it now."
        )


def _dumps(value) -> str:
    return json.dumps(value)
