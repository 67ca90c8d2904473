from django.core.management.base import BaseCommand
from django.db import transaction

from custom_events.models import CustomEvent
from custom_events.services import custom_event_create
from paminga.models import Account, Membership
from paminga.services import account_create, membership_create, user_get_or_create

DEMO_EMAIL = "demo@paminga.local"
DEMO_PASSWORD = "paminga-demo"
DEMO_EVENTS = [
    ("Watched Product Video", "watched-product-video", "Fired when a visitor plays the product overview video.", False),
    ("Visited Pricing Page", "visited-pricing-page", "High-intent: the visitor looked at pricing.", True),
    ("Requested Demo", "requested-demo", "The demo request form was submitted.", True),
    ("Downloaded Whitepaper", "downloaded-whitepaper-q1", "Q1 whitepaper download.", False),
]


class Command(BaseCommand):
    help = "Creates the demo account, login and custom events (idempotent: a second run reuses them)."

    def handle(self, *args, **options):
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
        self.stdout.write(
            f"{'Created' if created else 'Reusing'} the demo account “{account.name}” (site key {account.site_key}).\n"
            f"Log in at http://127.0.0.1:8000/login/ as {DEMO_EMAIL} with the password {DEMO_PASSWORD}\n"
            "Demo website with the tracking beacon: http://127.0.0.1:8000/demo/"
        )
