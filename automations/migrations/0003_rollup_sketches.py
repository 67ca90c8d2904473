"""The daily rollups keep HyperLogLog sketches of contacts and visitors instead of exact id sets: the sets made a
long range cost as much as the ids it held. Existing sets are turned into sketches here, so no rebuild is needed
(a rebuild would need raw rows that retention may already have deleted)."""

import django.db.models.deletion
from django.db import migrations, models


def sets_to_sketches(apps, schema_editor):
    from automations.reports.aggregates import ids_unpack, sketch_pack

    EventDailyRollup = apps.get_model("automations", "EventDailyRollup")
    batch = []
    for row in EventDailyRollup.objects.only("id", "contact_ids", "visitor_ids").iterator(chunk_size=2000):
        row.contact_sketch = sketch_pack(ids_unpack(row.contact_ids)) if row.contact_ids else b""
        row.visitor_sketch = sketch_pack(ids_unpack(row.visitor_ids)) if row.visitor_ids else b""
        batch.append(row)
        if len(batch) >= 2000:
            EventDailyRollup.objects.bulk_update(batch, ["contact_sketch", "visitor_sketch"])
            batch = []
    if batch:
        EventDailyRollup.objects.bulk_update(batch, ["contact_sketch", "visitor_sketch"])


class Migration(migrations.Migration):
    dependencies = [("automations", "0002_privacy"), ("paminga", "0003_merge_privacy_strict_origin")]

    operations = [
        migrations.AddField(
            model_name="eventdailyrollup", name="contact_sketch", field=models.BinaryField(default=b"")
        ),
        migrations.AddField(
            model_name="eventdailyrollup", name="visitor_sketch", field=models.BinaryField(default=b"")
        ),
        migrations.RunPython(sets_to_sketches, migrations.RunPython.noop, elidable=True),
        migrations.RemoveField(model_name="eventdailyrollup", name="contact_ids"),
        migrations.RemoveField(model_name="eventdailyrollup", name="visitor_ids"),
        migrations.AddField(
            model_name="reportrollupwatermark", name="folded_rows", field=models.BigIntegerField(default=0)
        ),
        migrations.CreateModel(
            name="ReportRebuild",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("time_zone", models.CharField(max_length=64)),
                ("upto", models.JSONField(default=dict)),
                ("day_from", models.DateField(null=True)),
                ("day_to", models.DateField(null=True)),
                ("done_through", models.DateField(null=True)),
                ("started_at", models.DateTimeField()),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "account",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="paminga.account"
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="BackgroundDelete",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("account_pk", models.BigIntegerField()),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("custom_event", "Custom event"),
                            ("marketing_source", "Marketing source"),
                            ("account", "Account"),
                        ],
                        max_length=24,
                    ),
                ),
                ("target_id", models.BigIntegerField()),
                ("label", models.CharField(max_length=300)),
                (
                    "status",
                    models.CharField(
                        choices=[("pending", "Waiting"), ("running", "Deleting"), ("done", "Done")],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("rows_total", models.BigIntegerField(default=0)),
                ("rows_done", models.BigIntegerField(default=0)),
                ("batches", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "indexes": [models.Index(fields=["account_pk", "status"], name="background_delete_account")],
                "constraints": [
                    models.UniqueConstraint(fields=("kind", "target_id"), name="background_delete_unique_target")
                ],
            },
        ),
    ]
