"""Migration operations that keep the hit tables writable while they run on PostgreSQL.

CREATE INDEX and DROP INDEX lock a table against writes until their transaction ends: on the tables every beacon hit
writes, a deploy would hold the collect endpoint for as long as an index takes to build. Their CONCURRENTLY forms
let writes go on; they cannot run in a transaction, so the migrations that use these are `atomic = False`. SQLite
has no such forms and no such problem: it gets the plain statements.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations
from django.db.migrations import AddIndex


def _postgresql(schema_editor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class AddIndexWithoutLocking(AddIndexConcurrently):
    """AddIndex, with CREATE INDEX CONCURRENTLY on PostgreSQL."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if _postgresql(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        return AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if _postgresql(schema_editor):
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        return AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


def drop_indexes(indexes: list[tuple[str, str, str]]) -> migrations.RunPython:
    """Drops the named indexes, each (name, table, column), with DROP INDEX CONCURRENTLY on PostgreSQL; reversed,
    creates them again. Only the indexes: the columns and their constraints stay as they are."""

    def forwards(apps, schema_editor):
        concurrently = " CONCURRENTLY" if _postgresql(schema_editor) else ""
        for name, _table, _column in indexes:
            schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {schema_editor.quote_name(name)}")

    def backwards(apps, schema_editor):
        concurrently = " CONCURRENTLY" if _postgresql(schema_editor) else ""
        quote = schema_editor.quote_name
        for name, table, column in indexes:
            schema_editor.execute(
                f"CREATE INDEX{concurrently} IF NOT EXISTS {quote(name)} ON {quote(table)} ({quote(column)})"
            )

    return migrations.RunPython(forwards, backwards, elidable=False)
