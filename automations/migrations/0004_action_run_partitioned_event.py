import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("automations", "0003_rollup_sketches"), ("tracking", "0005_debugger_reasons")]

    # Event occurrences become partitioned by month (tracking 0006): a foreign key to them cannot be a database
    # constraint any more. The account leads the unique key, as in every unique key of the event tables.
    operations = [
        migrations.AlterField(
            model_name="actionrun",
            name="event_record",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="action_runs",
                to="tracking.eventrecord",
            ),
        ),
        migrations.RemoveConstraint(model_name="actionrun", name="action_run_unique_per_event"),
        migrations.AddConstraint(
            model_name="actionrun",
            constraint=models.UniqueConstraint(
                fields=("account", "action", "event_record"), name="action_run_unique_per_event"
            ),
        ),
    ]
