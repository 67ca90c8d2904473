import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from automations.services import action_runs_sweep


class Command(BaseCommand):
    help = (
        "Enqueues action runs left pending (e.g. while the broker was down) or overdue for a retry, retries runs "
        "whose worker died, and skips runs that waited too long for identification. Prints one JSON object. "
        "Celery beat runs the same sweep every minute."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            default=None,
            metavar="SECONDS",
            help="Only runs pending for at least this long (default: AUTOMATIONS_SWEEP_AFTER_SECONDS). "
            "0 takes every pending run, e.g. right after the broker is back.",
        )
        parser.add_argument("--limit", type=int, default=5000, help="At most this many runs of each kind per sweep.")

    def handle(self, *args, older_than, limit, **options):
        if older_than is not None and older_than < 0:
            raise CommandError("--older-than must be 0 or more seconds.")
        if not 1 <= limit <= 100_000:
            raise CommandError("--limit must be between 1 and 100000.")
        result = action_runs_sweep(
            older_than=None if older_than is None else timedelta(seconds=older_than), limit=limit
        )
        self.stdout.write(json.dumps(result.__dict__))
        if result.not_enqueued:
            raise CommandError(
                f"{result.not_enqueued} run(s) could not be enqueued: is the broker reachable? They stay pending."
            )
