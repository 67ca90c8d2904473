"""The references between one account's rows become AccountForeignKey (paminga.fields): their joins match the
account as well as the id. The columns, indexes and constraints do not change, so this is the models' state only:
AlterField of a field's class would otherwise drop and re-add the checked foreign keys, scanning every row."""

import django.db.models.deletion
import paminga.fields
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0009_contact_recent_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="eventrecord",
                    name="attributed_impression",
                    field=paminga.fields.AccountForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="attributed_conversions",
                        to="tracking.impression",
                    ),
                ),
                migrations.AlterField(
                    model_name="eventrecord",
                    name="contact",
                    field=paminga.fields.AccountForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="event_records",
                        to="tracking.contact",
                    ),
                ),
                migrations.AlterField(
                    model_name="eventrecord",
                    name="session",
                    field=paminga.fields.AccountForeignKey(
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
                    name="visitor",
                    field=paminga.fields.AccountForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="event_records",
                        to="tracking.visitor",
                    ),
                ),
                migrations.AlterField(
                    model_name="impression",
                    name="session",
                    field=paminga.fields.AccountForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="impressions",
                        to="tracking.session",
                    ),
                ),
                migrations.AlterField(
                    model_name="impression",
                    name="visitor",
                    field=paminga.fields.AccountForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="impressions",
                        to="tracking.visitor",
                    ),
                ),
                migrations.AlterField(
                    model_name="session",
                    name="visitor",
                    field=paminga.fields.AccountForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="sessions",
                        to="tracking.visitor",
                    ),
                ),
                migrations.AlterField(
                    model_name="visitor",
                    name="contact",
                    field=paminga.fields.AccountForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="visitors", to="tracking.contact"
                    ),
                ),
                migrations.AlterField(
                    model_name="visitor",
                    name="current_session",
                    field=paminga.fields.AccountForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="tracking.session",
                    ),
                ),
            ],
        ),
    ]
