from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tracking.partitions import (
    PARTITIONED,
    partition_months,
    partitioned,
    partitions_ensure,
    partitions_maintain,
    recorded_keys_prune,
)


class Command(BaseCommand):
    help = (
        "Creates the monthly partitions of the raw tables ahead (as the beat task does), and with --from/--to for a "
        "range of months (before loading history); --list shows them. Deletes the expired keys of recorded hits."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="first", type=date.fromisoformat, help="First month (YYYY-MM-DD).")
        parser.add_argument("--to", dest="last", type=date.fromisoformat, help="Last month (YYYY-MM-DD).")
        parser.add_argument("--list", action="store_true", help="List the partitions, created nothing.")

    def handle(self, *args, first=None, last=None, list=False, **options):
        if not partitioned():
            self.stdout.write("This database has no partitions (SQLite keeps plain tables): nothing to do.")
            return
        if list:
            for table in PARTITIONED:
                months = partition_months(table)
                span = f"{months[0]:%Y-%m} to {months[-1]:%Y-%m}" if months else "none"
                self.stdout.write(f"{table}: {len(months)} months ({span}) and a default partition")
            return
        if (first is None) != (last is None):
            raise CommandError("Give both --from and --to, or neither.")
        if first is not None and first > last:
            raise CommandError("--from must not be after --to.")
        now = timezone.now()
        created = partitions_ensure(first, last) if first is not None else []
        created += partitions_maintain(now=now)
        keys = recorded_keys_prune(now=now)
        self.stdout.write(f"{len(created)} partitions created; {keys} expired keys deleted.")
        for name in created:
            self.stdout.write(f"  {name}")
