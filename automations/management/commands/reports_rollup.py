from django.core.management.base import BaseCommand, CommandError

from automations.models import ReportAccountRollup, ReportRebuild
from automations.reports.services import report_rollups_update
from paminga.models import Account
from paminga.progress import Progress


class Command(BaseCommand):
    help = (
        "Brings the report rollups up to date (what the periodic task does). With --rebuild, first forgets the "
        "rollups of the given accounts (or all), so they are rebuilt from the recorded rows. An interrupted rebuild "
        "resumes where it stopped on the next run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="Rebuild from scratch instead of updating.")
        parser.add_argument("--account", action="append", default=[], help="With --rebuild: only this account.")

    def handle(self, *args, rebuild, account, **options):
        if rebuild:
            accounts, rebuilds = ReportAccountRollup.objects.all(), ReportRebuild.objects.all()
            if account:
                known = set(Account.objects.filter(slug__in=account).values_list("slug", flat=True))
                unknown = sorted(set(account) - known)
                if unknown:
                    raise CommandError(f"No account with the slug “{unknown[0]}”.")
                accounts = accounts.filter(account__slug__in=account)
                rebuilds = rebuilds.filter(account__slug__in=account)
            # A rebuild in progress starts over too; without --rebuild, an interrupted one resumes where it stopped.
            rebuilds.delete()
            accounts.delete()
        with Progress(stream=self.stdout, description="Rolling up", unit="day") as progress:
            run = report_rollups_update(progress=progress)
        self.stdout.write(
            f"Report rollups up to date in {run.seconds:.1f} s: {len(run.accounts_rebuilt)} account(s) rebuilt, "
            f"{run.days_updated} day(s) updated."
        )
