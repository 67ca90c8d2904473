"""Many rows of one model written with one statement: how the ingester stores a batch.

QuerySet.bulk_create() and bulk_update() write the same rows, but build them through the SQL compiler value by value
(bulk_update as one CASE expression per column and row), which costs more CPU than the database spends storing them:
most of a batch's time. These helpers keep the models as the only description of the tables and prepare each value
as the ORM does (pre_save(), get_db_prep_save()); on PostgreSQL the values travel as one array per column, unnest()ed.
Elsewhere (SQLite, `make run`) they call the ORM's bulk operations. Like those, they send no model signals (this
project uses none). They hold no rule of the product: what the rows say is decided by tracking.ingest.
"""

import functools
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import Model

_sql: dict[tuple, str] = {}


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _array_type(field) -> str:
    """The column's type for CAST(... AS type[]), without a varchar's length: a cast to varchar(n) would silently cut a
    longer value, where the insert refuses it (values are clipped to their lengths before)."""
    db_type = field.cast_db_type(connection)
    return ("varchar" if db_type.startswith("varchar(") else db_type) + "[]"


# Fields whose values of these types get_db_prep_save() returns unchanged on PostgreSQL: passed as they are, which is
# most of the CPU a row costs here.
_AS_IS = (
    (models.ForeignKey, int),
    (models.BooleanField, bool),
    (models.IntegerField, int),
    (models.CharField, str),
    (models.DateTimeField, datetime),
)


def _prepared(field, obj: Model, db):
    value = field.pre_save(obj, True)
    if value is None:
        return None
    for field_class, value_class in _AS_IS:
        if isinstance(field, field_class) and type(value) is value_class:
            if value_class is datetime and value.tzinfo is None:
                break  # a naive time: the ORM's conversion (and warning)
            return value
    return field.get_db_prep_save(value, db)


def _execute(query: str, params: list, *, fetch: bool = False, binary: bool = True):
    """Runs the statement with server-side binding: the arrays travel as values, not quoted into the SQL text (Django's
    psycopg cursors bind on the client, which costs more CPU than the insert itself for a batch)."""
    import psycopg

    def run(sql, params, many, context):
        connection.ensure_connection()
        # Errors as Django's own (IntegrityError, OperationalError, ...), as the callers expect.
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            # Binary: arrays go without being written out as text and parsed again. Rows read back come as text,
            # which the fields' from_db_value() expect (as from Django's own cursors).
            cursor.execute(sql, params, binary=binary)
            return cursor.fetchall() if fetch else None

    # Through the connection's execute wrappers, as Django's cursors run every statement (instrumentation, and
    # connection.execute_wrapper() in tests that make the database unreachable).
    executor = run
    for wrapper in reversed(connection.execute_wrappers):
        executor = functools.partial(wrapper, executor)
    return executor(query, params, False, {"connection": connection, "cursor": None})


def rows_insert(objs: list[Model]) -> None:
    """Inserts unsaved instances of one model and sets their primary keys (generated ones), in order."""
    if not objs:
        return
    model = type(objs[0])
    if getattr(model, "TEXTS", None):
        from .texts import page_texts_store

        page_texts_store(objs)
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs)
        return
    generated = model._meta.auto_field
    fields = [field for field in model._meta.concrete_fields if field is not generated]
    key = (model, "insert")
    query = _sql.get(key)
    if query is None:
        # %b: the arrays travel in PostgreSQL's binary format (no quoting of each string as text).
        arrays = ", ".join(f"CAST(%b AS {_array_type(field)})" for field in fields)
        query = _sql[key] = (
            f"INSERT INTO {_quote(model._meta.db_table)} ({', '.join(_quote(f.column) for f in fields)}) "
            f"SELECT * FROM unnest({arrays})" + (f" RETURNING {_quote(generated.column)}" if generated else "")
        )
    for obj in objs:
        # Foreign keys to rows saved since the instance was built (a new visit, an impression just inserted).
        obj._prepare_related_fields_for_save(operation_name="rows_insert")
    db = connections[DEFAULT_DB_ALIAS]  # not the proxy: each attribute read through it is a context-local lookup
    columns = [[_prepared(field, obj, db) for obj in objs] for field in fields]
    if generated is None:
        _execute(query, columns)
    else:
        for obj, (pk,) in zip(objs, _execute(query, columns, fetch=True), strict=True):
            obj.pk = pk
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias


def rows_update(objs: list[Model], names: list[str]) -> None:
    """Writes these fields of saved instances of one model, each row its own values."""
    if not objs:
        return
    model = type(objs[0])
    fields = [model._meta.get_field(name) for name in names]
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="rows_update", fields=fields)
    table, pk = _quote(model._meta.db_table), _quote(model._meta.pk.column)
    key = (model, "update", tuple(names), connection.vendor)
    query = _sql.get(key)
    if connection.vendor != "postgresql":
        if query is None:
            assignments = ", ".join(f"{_quote(f.column)} = %s" for f in fields)
            query = _sql[key] = f"UPDATE {table} SET {assignments} WHERE {pk} = %s"
        params = [[f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields] + [obj.pk] for obj in objs]
        with connection.cursor() as cursor:
            cursor.executemany(query, params)
        return
    if query is None:
        columns = ", ".join(f"c{i}" for i in range(len(fields)))
        arrays = ", ".join(f"CAST(%b AS {_array_type(f)})" for f in fields)
        assignments = ", ".join(f"{_quote(f.column)} = v.c{i}" for i, f in enumerate(fields))
        query = _sql[key] = (
            f"UPDATE {table} SET {assignments} FROM unnest(CAST(%b AS bigint[]), {arrays}) AS v(id, {columns}) "
            f"WHERE {table}.{pk} = v.id"
        )
    params = [[obj.pk for obj in objs]]
    params += [[f.get_db_prep_save(getattr(obj, f.attname), connection) for obj in objs] for f in fields]
    _execute(query, params)


def rows_select(model: type[Model], *, lock: bool = False, **filters) -> list[Model]:
    """The instances whose columns equal the given values, a list meaning any of them (`uid=[...]`), ordered by primary
    key; with `lock`, their rows locked until the transaction ends (in that order, so that two batches never wait on
    each other in a circle)."""
    if connection.vendor != "postgresql":
        lookups = {f"{name}__in" if isinstance(value, list | set) else name: value for name, value in filters.items()}
        query = model.objects.filter(**lookups).order_by("pk")
        return list(query.select_for_update() if lock else query)
    fields = model._meta.concrete_fields
    key = (model, "select", _shape(filters), lock)
    query = _sql.get(key)
    if query is None:
        query = _sql[key] = (
            f"SELECT {', '.join(_quote(f.column) for f in fields)} FROM {_quote(model._meta.db_table)} "
            f"WHERE {_where(model, filters)} ORDER BY {_quote(model._meta.pk.column)}" + (" FOR UPDATE" if lock else "")
        )
    params = _params(filters)
    converters = [
        (i, f, connection.ops.get_db_converters(f.get_col(model._meta.db_table)) + f.get_db_converters(connection))
        for i, f in enumerate(fields)
    ]
    instances = []
    for row in _execute(query, params, fetch=True, binary=False):
        values = list(row)
        for i, field, field_converters in converters:
            for convert in field_converters:
                values[i] = convert(values[i], field, connection)
        instances.append(model.from_db(connection.alias, None, values))
    return instances


def rows_values(model: type[Model], *columns: str, **filters) -> list[tuple]:
    """Tuples of these columns of the rows matching the filters (as rows_select), without building instances."""
    if connection.vendor != "postgresql":
        lookups = {f"{name}__in" if isinstance(value, list | set) else name: value for name, value in filters.items()}
        return list(model.objects.filter(**lookups).values_list(*columns))
    key = (model, "values", columns, _shape(filters))
    query = _sql.get(key)
    if query is None:
        names = ", ".join(_quote(model._meta.get_field(column).column) for column in columns)
        query = _sql[key] = f"SELECT {names} FROM {_quote(model._meta.db_table)} WHERE {_where(model, filters)}"
    return [tuple(row) for row in _execute(query, _params(filters), fetch=True, binary=False)]


def _shape(filters: dict) -> tuple:
    return tuple((name, isinstance(value, list | set)) for name, value in filters.items())


def _where(model: type[Model], filters: dict) -> str:
    """column = %s for a value, column = ANY(%s) for a list of them (one array parameter, whatever its length)."""
    return " AND ".join(
        f"{_quote(model._meta.get_field(name).column)} = {'ANY(%s)' if many else '%s'}"
        for name, many in _shape(filters)
    )


def _params(filters: dict) -> list:
    return [list(value) if isinstance(value, list | set) else value for value in filters.values()]
