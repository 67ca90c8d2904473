"""Page URLs, titles and referrers are stored once per account (PageText) and referred to: the rows' texts move into
the new table, then the text columns go."""

import django.db.models.deletion
import paminga.fields
from django.db import migrations, models

# Each table's text columns and the reference that replaces each.
TEXTS = {
    "session": {"landing_url": "landing_url_text", "referrer": "referrer_text"},
    "impression": {"url": "url_text", "title": "title_text", "referrer": "referrer_text"},
    "eventrecord": {"page_url": "page_url_text"},
}


TEXTS_CHUNK = 5000


def _checks_now(schema_editor):
    """The foreign key checks the updates queued run now: PostgreSQL cannot alter a table with checks pending."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def texts_move(apps, schema_editor):
    from tracking.texts import text_digest

    PageText = apps.get_model("tracking", "PageText")
    q = schema_editor.quote_name
    texts = q(PageText._meta.db_table)
    for model_name, columns in TEXTS.items():
        table = q(apps.get_model("tracking", model_name)._meta.db_table)
        for column, reference in columns.items():
            # Read in chunks (a server-side cursor on PostgreSQL): URLs with click ids may be millions of texts.
            with schema_editor.connection.chunked_cursor() as cursor:
                cursor.execute(f"SELECT DISTINCT account_id, {q(column)} FROM {table} WHERE {q(column)} <> ''")
                while found := cursor.fetchmany(TEXTS_CHUNK):
                    PageText.objects.using(schema_editor.connection.alias).bulk_create(
                        [
                            PageText(account_id=account_id, digest=text_digest(value), value=value)
                            for account_id, value in found
                        ],
                        ignore_conflicts=True,
                    )
            schema_editor.execute(
                f"UPDATE {table} SET {q(reference + '_id')} = p.id FROM {texts} p "
                f"WHERE p.account_id = {table}.account_id AND p.value = {table}.{q(column)}"
            )
    _checks_now(schema_editor)


def texts_move_back(apps, schema_editor):
    PageText = apps.get_model("tracking", "PageText")
    q = schema_editor.quote_name
    texts = q(PageText._meta.db_table)
    for model_name, columns in TEXTS.items():
        table = q(apps.get_model("tracking", model_name)._meta.db_table)
        for column, reference in columns.items():
            schema_editor.execute(
                f"UPDATE {table} SET {q(column)} = p.value FROM {texts} p WHERE p.id = {table}.{q(reference + '_id')}"
            )
    _checks_now(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("paminga", "0006_merge_filter_bots_deleted_at"),
        ("tracking", "0010_account_joins"),
    ]

    operations = [
        migrations.CreateModel(
            name="PageText",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("digest", models.BinaryField(max_length=16)),
                ("value", models.TextField()),
                ("purge_mark", models.IntegerField(blank=True, null=True)),
                (
                    "account",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="paminga.account",
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="eventrecord",
            name="page_url_text",
            field=paminga.fields.AccountForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="tracking.pagetext",
            ),
        ),
        migrations.AddField(
            model_name="impression",
            name="referrer_text",
            field=paminga.fields.AccountForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="tracking.pagetext",
            ),
        ),
        migrations.AddField(
            model_name="impression",
            name="title_text",
            field=paminga.fields.AccountForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="tracking.pagetext",
            ),
        ),
        migrations.AddField(
            model_name="impression",
            name="url_text",
            field=paminga.fields.AccountForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="tracking.pagetext",
            ),
        ),
        migrations.AddField(
            model_name="session",
            name="landing_url_text",
            field=paminga.fields.AccountForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="tracking.pagetext",
            ),
        ),
        migrations.AddField(
            model_name="session",
            name="referrer_text",
            field=paminga.fields.AccountForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="tracking.pagetext",
            ),
        ),
        migrations.AddConstraint(
            model_name="pagetext",
            constraint=models.UniqueConstraint(fields=("account", "digest"), name="page_text_unique_digest"),
        ),
        migrations.RunPython(texts_move, texts_move_back, elidable=False),
        # State only (blank is no column property): reversed, the column is added back with "" in every row, before
        # texts_move_back fills it.
        migrations.AlterField(model_name="impression", name="url", field=models.CharField(max_length=2000, blank=True)),
        migrations.RemoveField(
            model_name="eventrecord",
            name="page_url",
        ),
        migrations.RemoveField(
            model_name="impression",
            name="referrer",
        ),
        migrations.RemoveField(
            model_name="impression",
            name="title",
        ),
        migrations.RemoveField(
            model_name="impression",
            name="url",
        ),
        migrations.RemoveField(
            model_name="session",
            name="landing_url",
        ),
        migrations.RemoveField(
            model_name="session",
            name="referrer",
        ),
    ]
