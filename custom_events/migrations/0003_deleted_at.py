"""Deleting a custom event or a marketing source hides it at once (deleted_at) and a background task removes its
rows; the unique slug and name hold among those not deleted, so they can be used again at once."""


import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('custom_events', '0001_initial'),
        ('paminga', '0003_merge_privacy_strict_origin'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='customevent',
            name='custom_event_unique_slug_per_account',
        ),
        migrations.RemoveConstraint(
            model_name='marketingsource',
            name='marketing_source_unique_name_per_account',
        ),
        migrations.AddField(
            model_name='customevent',
            name='deleted_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='marketingsource',
            name='deleted_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddConstraint(
            model_name='customevent',
            constraint=models.UniqueConstraint(condition=models.Q(('deleted_at__isnull', True)), fields=('account', 'slug'), name='custom_event_unique_slug_per_account', violation_error_message='This slug is already used by another custom event in this account.'),
        ),
        migrations.AddConstraint(
            model_name='marketingsource',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Lower('name'), models.F('account'), condition=models.Q(('deleted_at__isnull', True)), name='marketing_source_unique_name_per_account', violation_error_message='A marketing source with this name already exists.'),
        ),
    ]
