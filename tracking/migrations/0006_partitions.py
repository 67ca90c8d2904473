"""The raw tables become partitioned by month on PostgreSQL (tracking.partitions), and the keys that make each
recorded hit unique move to RecordedKey.

The tables are rebuilt and their rows copied, in one transaction: on a large database, run it in a maintenance
window (the collect endpoint keeps accepting hits into the queue meanwhile, and the ingester catches up after).
"""

from datetime import timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

from tracking.partitions import month_next, month_start, table_partition


def keys_copy(apps, schema_editor):
    """The recent keys, so that a hit or API call repeated just after the deploy is still recognised."""
    Impression = apps.get_model("tracking", "Impression")
    EventRecord = apps.get_model("tracking", "EventRecord")
    RecordedKey = apps.get_model("tracking", "RecordedKey")
    since = timezone.now() - timedelta(days=settings.INGEST_KEY_DAYS)
    impressions = Impression.objects.filter(client_id__isnull=False, occurred_at__gte=since)
    RecordedKey.objects.bulk_create(
        (
            RecordedKey(account_id=account_id, key="page:" + client_id, record_id=pk, created_at=at)
            for pk, account_id, client_id, at in impressions.values_list("pk", "account_id", "client_id", "occurred_at")
        ),
        batch_size=5000,
        ignore_conflicts=True,
    )
    events = EventRecord.objects.filter(idempotency_key__isnull=False, created_at__gte=since)
    RecordedKey.objects.bulk_create(
        (
            RecordedKey(account_id=account_id, key=key, record_id=pk, created_at=at)
            for pk, account_id, key, at in events.values_list("pk", "account_id", "idempotency_key", "created_at")
        ),
        batch_size=5000,
        ignore_conflicts=True,
    )


def tables_partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    now = timezone.now()
    months = [month_start(now)]
    for _ in range(3):
        months.append(month_next(months[-1]))
    for name in ("Session", "Impression", "EventRecord", "RejectedHit"):
        table_partition(schema_editor, apps.get_model("tracking", name), months)


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0005_debugger_reasons"),
        ("automations", "0004_action_run_partitioned_event"),
        ("paminga", "0003_merge_privacy_strict_origin"),
    ]

    operations = [
        migrations.CreateModel(
            name="RecordedKey",
            fields=[
                ("pk", models.CompositePrimaryKey("account", "key", blank=True, editable=False, primary_key=True, serialize=False)),
                ("key", models.CharField(max_length=200)),
                ("record_id", models.BigIntegerField(blank=True, null=True)),
                ("created_at", models.DateTimeField()),
                (
                    "account",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="paminga.account",
                    ),
                ),
            ],
        ),
        migrations.RunPython(keys_copy, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="impression", name="impression_unique_client_id"),
        migrations.RemoveConstraint(model_name="eventrecord", name="event_record_unique_idempotency_key"),
        migrations.RemoveField(model_name="impression", name="client_id"),
        migrations.RemoveField(model_name="eventrecord", name="idempotency_key"),
        migrations.AlterField(
            model_name="visitor",
            name="current_session",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="tracking.session",
            ),
        ),
        migrations.AlterField(
            model_name="impression",
            name="session",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="impressions",
                to="tracking.session",
            ),
        ),
        migrations.AlterField(
            model_name="eventrecord",
            name="session",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="event_records",
                to="tracking.session",
            ),
        ),
        migrations.AlterField(
            model_name="eventrecord",
            name="attributed_impression",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="attributed_conversions",
                to="tracking.impression",
            ),
        ),
        migrations.RunPython(tables_partition, migrations.RunPython.noop),
    ]
