"""The daily rollups keep HyperLogLog sketches of contacts and visitors instead of exact id sets: the sets made a
long range cost as much as the ids it held. Existing sets are turned into sketches here, so no rebuild is needed
(a rebuild would need raw rows that retention may already have deleted)."""

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
    dependencies = [("automations", "0002_privacy")]

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
    ]
