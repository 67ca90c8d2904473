"""Deleting an account hides it at once (deleted_at); a background task removes its rows."""


from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('paminga', '0003_merge_privacy_strict_origin'),
    ]

    operations = [
        migrations.AddField(
            model_name='account',
            name='deleted_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
