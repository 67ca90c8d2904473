"""The database the migrations build is the one the models describe: no model change without its migration, and
every table has exactly the indexes its model declares (the partitioned tables of PostgreSQL, rebuilt by plain
SQL, included), on SQLite and on PostgreSQL."""

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection

APPS = ("paminga", "custom_events", "tracking", "automations")


@pytest.mark.django_db
def test_no_model_change_without_a_migration():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit:
        pytest.fail("A model change has no migration:\n" + out.getvalue())


def _declared(model) -> set[tuple[str, ...]]:
    """The column lists of the model's plain indexes (not its primary key or unique ones)."""
    columns = set()
    for index in model._meta.indexes:
        columns.add(tuple(model._meta.get_field(name.lstrip("-")).column for name in index.fields))
    for field in model._meta.local_fields:
        if field.db_index and not field.unique and not field.primary_key:
            columns.add((field.column,))
    return columns


def _built(model) -> set[tuple[str, ...]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {
        tuple(info["columns"])
        for name, info in constraints.items()
        # Django's own companion of a unique or indexed text column on PostgreSQL (for LIKE), not declared apart.
        if info["index"] and not info["unique"] and not info["primary_key"] and not name.endswith("_like")
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "model",
    [m for m in apps.get_models() if m._meta.app_label in APPS and m._meta.managed],
    ids=lambda m: m._meta.label,
)
def test_every_table_has_the_indexes_its_model_declares(model):
    assert _built(model) == _declared(model)


def _leading_columns(model) -> set[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    leading = {
        info["columns"][0] for info in constraints.values() if (info["index"] or info["unique"]) and info["columns"]
    }
    # Every engine indexes a primary key; SQLite's introspection does not report a composite one.
    pk_fields = getattr(model._meta.pk, "fields", None) or [model._meta.pk]
    return leading | {pk_fields[0].column}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field",
    [
        f
        for m in apps.get_models()
        if m._meta.app_label in APPS and m._meta.managed
        for f in m._meta.local_fields
        if f.remote_field and f.db_constraint
    ],
    ids=lambda f: f"{f.model._meta.label}.{f.name}",
)
def test_every_checked_foreign_key_leads_an_index(field):
    """Deleting a referenced row makes the database look for rows that still refer to it, one look-up per deleted
    row: without an index leading with the column, each is a scan of the whole table (of every account)."""
    assert field.column in _leading_columns(field.model)
