"""Run by test_replica.py in a process of its own, against a private primary and its streaming replica
(DATABASE_URL, DATABASE_REPLICA_URL): prints what reached which server, as JSON on its last line."""

import json
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paminga.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from automations.reports.services import report_rollups_update  # noqa: E402
from custom_events.services import custom_event_create  # noqa: E402
from paminga import replica  # noqa: E402
from paminga.services import account_create, api_key_create, membership_create, user_get_or_create  # noqa: E402
from tracking.models import Contact, EventRecord  # noqa: E402

REPORT_TABLES = ("automations_eventdailyrollup", "automations_eventdailybreakdown", "tracking_eventrecord")


def main() -> None:
    call_command("migrate", verbosity=0)
    account = account_create(name="Acme", slug="acme", time_zone="UTC")
    event = custom_event_create(account=account, name="Demo", slug="requested-demo")
    contacts = Contact.objects.bulk_create([Contact(account=account, email=f"p{i}@example.com") for i in range(20)])
    now = timezone.now()
    EventRecord.objects.bulk_create(
        [
            EventRecord(
                account=account, custom_event=event, contact=c, source="api", occurred_at=now - timedelta(days=d)
            )
            for c in contacts
            for d in range(3)
        ]
    )
    report_rollups_update(now=now + timedelta(minutes=2))
    user = user_get_or_create(email="owner@example.com")
    membership_create(account=account, user=user, role="owner")
    secret = api_key_create(account=account, name="CRM")[1]

    # The replica has replayed everything (the account's rollups are there).
    deadline = time.monotonic() + 30
    while True:
        try:
            with connections["replica"].cursor() as cursor:
                cursor.execute("SELECT count(*) FROM automations_eventdailyrollup")
                if cursor.fetchone()[0] and replica.replica_lag_seconds() == 0:
                    break
        except Exception:  # noqa: BLE001 - still starting
            connections["replica"].close()
        if time.monotonic() > deadline:
            sys.exit("the replica never caught up")
        time.sleep(0.2)

    browser = Client()
    browser.force_login(user)

    def reports(replica_up=True) -> dict:
        """Every kind of report read, with the statements each server received (none on a stopped replica)."""
        with (
            CaptureQueriesContext(connections["default"]) as primary,
            CaptureQueriesContext(connections["replica"]) if replica_up else nullcontext([]) as secondary,
        ):
            statuses = [
                browser.get("/automations/custom-events/").status_code,
                browser.get(f"/automations/custom-events/{event.pk}/report/").status_code,
                browser.get("/automations/custom-events/custom-events.csv").status_code,
                browser.get(f"/automations/custom-events/{event.pk}/report/channel.csv").status_code,
                browser.get("/automations/conversions/").status_code,
            ]
            answer = Client().post(
                "/graphql/",
                json.dumps({"query": "{ custom_events_report { events { slug fires unique_contacts } } }"}),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {secret}",
            )
            csv = b"".join(
                browser.get(f"/automations/custom-events/{event.pk}/report/occurrences.csv").streaming_content
            )
        return {
            "statuses": statuses,
            "graphql": answer.json(),
            "occurrence_lines": csv.decode("utf-8-sig").count("\n"),
            "primary": sum(any(t in q["sql"] for t in REPORT_TABLES) for q in primary.captured_queries),
            "replica": sum(
                any(t in q["sql"] for t in REPORT_TABLES) for q in getattr(secondary, "captured_queries", [])
            ),
        }

    result = {"up": reports()}
    settings.REPLICA_MAX_LAG_SECONDS = -1  # any lag is too much: as a replica far behind
    replica.replica_state_forget()
    result["lagging"] = reports()
    settings.REPLICA_MAX_LAG_SECONDS = 30
    subprocess.run(json.loads(os.environ["REPLICA_STOP_COMMAND"]), check=True, capture_output=True)
    connections["replica"].close()
    replica.replica_state_forget()
    started = time.monotonic()
    result["stopped"] = reports(replica_up=False)
    result["stopped"]["seconds"] = time.monotonic() - started
    print(json.dumps(result))


if __name__ == "__main__":
    main()
