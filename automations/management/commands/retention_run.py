from django.core.management.base import BaseCommand

from automations.retention import retention_run
from paminga.progress import Progress


class Command(BaseCommand):
    help = (
        "Deletes raw rows (page views, events and their action runs, visits, event debugger entries) older than "
        "each account's retention period now, in small batches: what the periodic job does."
    )

    def handle(self, *args, **options):
        with Progress(stream=self.stdout, description="Deleting old raw rows", unit="row") as progress:
            run = retention_run(log=self.stdout.write, progress=progress)
        deleted = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in run.deleted.items())
        self.stdout.write(
            f"Retention done in {run.seconds:.1f} s ({run.batches} batches, {run.accounts} account(s)): "
            f"deleted {deleted}."
            + (f" Skipped (rollups being rebuilt): {', '.join(run.skipped)}." if run.skipped else "")
        )
