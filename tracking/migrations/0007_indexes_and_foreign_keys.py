"""Indexes and foreign keys for deletes that stay within their rows, and indexes that are what the models say.

- A page view's visitor is neither indexed nor a database constraint: a visitor's page views are found through its
  visits, and a constraint without an index leading with the column makes the database scan every page view for
  each visitor deleted.
- An event occurrence's index on its definition, account and time now leads with the definition, so that it also
  serves the database's check when a definition's row is deleted (it led with the account, and the check scanned
  every occurrence).
- The single-column indexes on a definition and on a debugger entry's account go where they exist (SQLite, and
  PostgreSQL databases migrated back and forth): composite indexes lead with those columns.

Only those indexes and that constraint change: AlterField would also drop and re-add the foreign key constraints
it touches, and re-adding one checks every row of the table again, for a constraint that does not change.
On a large database the new index is built in this migration (minutes at tens of millions of occurrences).
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXED = (("Impression", "visitor"), ("EventRecord", "custom_event"), ("RejectedHit", "account"))


def _column(model, name: str) -> str:
    return model._meta.get_field(name).column


def indexes_and_constraint_drop(apps, schema_editor):
    for model_name, field_name in INDEXED:
        model = apps.get_model("tracking", model_name)
        names = schema_editor._constraint_names(
            model, [_column(model, field_name)], index=True, primary_key=False, unique=False
        )
        for name in names:
            schema_editor.execute(schema_editor._delete_index_sql(model, name))
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite drops a constraint only by rebuilding the table; a development database keeps it
    impression = apps.get_model("tracking", "Impression")
    for name in schema_editor._constraint_names(impression, [_column(impression, "visitor")], foreign_key=True):
        schema_editor.execute(schema_editor._delete_fk_sql(impression, name))


def indexes_and_constraint_create(apps, schema_editor):
    for model_name, field_name in INDEXED:
        model = apps.get_model("tracking", model_name)
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[model._meta.get_field(field_name)]))
    if schema_editor.connection.vendor != "postgresql":
        return
    impression = apps.get_model("tracking", "Impression")
    field = impression._meta.get_field("visitor")
    schema_editor.execute(schema_editor._create_fk_sql(impression, field, "_fk_%(to_table)s_%(to_column)s"))


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
                        db_constraint=False,
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
                        on_delete=django.db.models.deletion.DO_NOTHING,
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
            database_operations=[migrations.RunPython(indexes_and_constraint_drop, indexes_and_constraint_create)],
        ),
        migrations.RemoveIndex(model_name="eventrecord", name="event_record_event_time"),
        migrations.AddIndex(
            model_name="eventrecord",
            index=models.Index(fields=["custom_event", "account", "occurred_at"], name="event_record_event_time"),
        ),
    ]
