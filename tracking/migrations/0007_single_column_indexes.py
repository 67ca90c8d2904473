"""Three single-column indexes go, each covered by a composite one that every query uses, or by another path:

- a page view's visitor: a visitor's page views are found through its visits (the visits' (visitor, last seen)
  index, then the page views' (visit, time) one);
- an event occurrence's definition: (account, definition, time) serves every query, each naming its account;
- a debugger entry's account: (account, time) serves it.

Only the indexes are dropped, where they exist. AlterField would also drop and re-add the foreign key
constraints, and re-adding one checks every row of the table again, for a constraint that does not change.
"""

import django.db.models.deletion
from django.db import migrations, models

COLUMNS = (("Impression", "visitor"), ("EventRecord", "custom_event"), ("RejectedHit", "account"))


def indexes_drop(apps, schema_editor):
    for model_name, field_name in COLUMNS:
        model = apps.get_model("tracking", model_name)
        column = model._meta.get_field(field_name).column
        names = schema_editor._constraint_names(model, [column], index=True, primary_key=False, unique=False)
        for name in names:
            schema_editor.execute(schema_editor._delete_index_sql(model, name))


def indexes_create(apps, schema_editor):
    for model_name, field_name in COLUMNS:
        model = apps.get_model("tracking", model_name)
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[model._meta.get_field(field_name)]))


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0006_partitions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="impression",
                    name="visitor",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="impressions",
                        to="tracking.visitor",
                    ),
                ),
                migrations.AlterField(
                    model_name="eventrecord",
                    name="custom_event",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="records",
                        to="custom_events.customevent",
                    ),
                ),
                migrations.AlterField(
                    model_name="rejectedhit",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="rejected_hits",
                        to="paminga.account",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(indexes_drop, indexes_create)],
        ),
    ]
