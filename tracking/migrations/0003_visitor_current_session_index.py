from django.db import migrations, models

from ._operations import AddIndexWithoutLocking


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction (see _operations.py)

    dependencies = [("tracking", "0002_fewer_indexes")]

    operations = [
        AddIndexWithoutLocking(
            model_name="visitor",
            index=models.Index(fields=["current_session"], name="visitor_current_session"),
        ),
    ]
