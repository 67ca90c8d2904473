from django.core.management.base import BaseCommand
from django.db import transaction

from automations.reports.seed import demo_history_create
from automations.reports.services import report_rollups_update
from custom_events.models import CustomEvent
from custom_events.services import custom_event_create
from paminga.models import Account, Membership
from paminga.services import account_create, membership_create, user_get_or_create
from paminga.site import site_url
from tracking.models import EventRecord

DEMO_EMAIL = "demo@paminga.local"
DEMO_PASSWORD = "paminga-demo"
DEMO_EVENTS = [
    ("Watched Product Video", "watched-product-video", "Fired when a visitor plays the product overview video.", False),
    ("Visited Pricing Page", "visited-pricing-page", "High-intent: the visitor looked at pricing.", True),
    ("Requested Demo", "requested-demo", "The demo request form was submitted.", True),
    ("Downloaded Whitepaper", "downloaded-whitepaper-q1", "Q1 whitepaper download.", False),
]
# A small report history for a new demo account, so that the reports are populated on first run.
DEMO_HISTORY_EVENTS = 3000
DEMO_HISTORY_DAYS = 60


class Command(BaseCommand):
    help = (
        "Creates the demo account, login and custom events, and a small report history when the account has none "
        "(idempotent: a second run reuses them)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-history", action="store_true", help="Do not seed the report history.")
        parser.add_argument(
            "--url",
            default="",
            help="The URL the server runs at, for the printed links (`make run` passes its HOST and PORT). "
            "Default: SITE_URL, else http://127.0.0.1:8000.",
        )

    def handle(self, *args, no_history=False, url="", **options):
        with transaction.atomic():
            account = Account.objects.filter(slug="demo").first()
            created = account is None
            if created:
                account = account_create(name="Demo Company", slug="demo", domains=["localhost", "127.0.0.1"])
            user = user_get_or_create(email=DEMO_EMAIL, password=DEMO_PASSWORD)
            if not user.is_staff:
                user.is_staff = user.is_superuser = True  # the demo login may also browse the admin
                user.save(update_fields=["is_staff", "is_superuser"])
            membership_create(account=account, user=user, role=Membership.Role.OWNER)
            for name, slug, description, conversion in DEMO_EVENTS:
                if not CustomEvent.objects.filter(account=account, slug=slug).exists():
                    custom_event_create(
                        account=account, name=name, slug=slug, description=description, counts_as_conversion=conversion
                    )
        if not no_history and not EventRecord.objects.filter(account=account).exists():
            result = demo_history_create(account=account, events=DEMO_HISTORY_EVENTS, days=DEMO_HISTORY_DAYS)
            report_rollups_update()
            self.stdout.write(
                f"Seeded a report history: {result.events:,} events, {result.sessions:,} visits and "
                f"{result.impressions:,} page views over {DEMO_HISTORY_DAYS} days."
            )
        base = (url or site_url()).rstrip("/")
        self.stdout.write(
            f"{'Created' if created else 'Reusing'} the demo account “{account.name}” (site key {account.site_key}).\n"
            f"Log in at {base}/login/ as {DEMO_EMAIL} with the password {DEMO_PASSWORD}\n"
            f"Demo website with the tracking beacon: {base}/demo/"
        )
