"""An action run's occurrence becomes an AccountForeignKey, as in tracking 0010: the models' state only."""

import django.db.models.deletion
import paminga.fields
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0004_action_run_partitioned_event"),
        ("tracking", "0010_account_joins"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="actionrun",
                    name="event_record",
                    field=paminga.fields.AccountForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="action_runs",
                        to="tracking.eventrecord",
                    ),
                ),
            ],
        ),
    ]
