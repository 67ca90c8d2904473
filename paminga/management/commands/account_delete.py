from django.core.management.base import BaseCommand, CommandError

from paminga.models import Account
from paminga.services import account_delete


class Command(BaseCommand):
    help = (
        "Deletes an account: it is gone at once (logins, site key, API keys); its rows are removed in the "
        "background by the worker. With --now, removes them here, showing progress."
    )

    def add_arguments(self, parser):
        parser.add_argument("account", help="The account's slug.")
        parser.add_argument("--now", action="store_true", help="Remove the rows in this process, not the worker.")

    def handle(self, *args, account, now, **options):
        target = Account.objects.filter(slug=account, deleted_at__isnull=True).first()
        if target is None:
            raise CommandError(f"No account with the slug “{account}”.")
        job = account_delete(account=target)
        if now:
            from automations.deletes import background_delete_run

            job = background_delete_run(job_id=job.pk)
            self.stdout.write(f"Account {account} deleted: {job.rows_done:,} rows removed in {job.batches} batches.")
        else:
            self.stdout.write(f"Account {account} deleted; its rows are being removed in the background (#{job.pk}).")
