from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from automations.reports.seed import demo_history_create
from paminga.models import Account
from paminga.progress import Progress

MAX_EVENTS = 50_000_000
MAX_DAYS = 3650


class Command(BaseCommand):
    help = (
        "Generates realistic report history (visitors, visits, page views, custom events, conversions) in an "
        "account, then brings the report rollups up to date. Adds to any history the account already has."
    )

    def add_arguments(self, parser):
        parser.add_argument("--events", type=int, required=True, help="How many custom event occurrences to write.")
        parser.add_argument("--account", default="demo", help="Account slug (default: demo, created if missing).")
        parser.add_argument("--days", type=int, default=365, help="Spread over this many days up to now (365).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed: the same seed writes the same history.")
        parser.add_argument("--no-rollup", action="store_true", help="Skip the rollup update at the end.")

    def handle(self, *args, events, account, days, seed, no_rollup, **options):
        if not 0 < events <= MAX_EVENTS:
            raise CommandError(f"--events must be between 1 and {MAX_EVENTS:,}.")
        if not 0 < days <= MAX_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_DAYS}.")
        target = Account.objects.filter(slug=account).first()
        if target is None and account == "demo":
            call_command("seed_demo", stdout=self.stdout, no_history=True)
            target = Account.objects.get(slug="demo")
        if target is None:
            raise CommandError(f"No account with the slug “{account}”. Create it with `manage.py create_account`.")
        self.stdout.write(f"Writing {events:,} events over {days} days into “{target.name}” ({target.time_zone})…")
        with Progress(stream=self.stdout, description="Writing events", unit="event", total=events) as progress:
            result = demo_history_create(account=target, events=events, days=days, random_seed=seed, progress=progress)
        self.stdout.write(
            f"Wrote {result.events:,} events ({result.conversions:,} conversions), {result.sessions:,} visits, "
            f"{result.impressions:,} page views, {result.visitors:,} visitors and {result.contacts:,} contacts "
            f"in {result.seconds:.1f} s."
        )
        if not no_rollup:
            call_command("reports_rollup", stdout=self.stdout)
