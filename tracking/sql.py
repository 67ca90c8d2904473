"""SQL for the beacon's hot path, built once from the models' metadata.

Every beacon hit reads its visitor (with the contact and latest visit) and inserts one row; some update a visit.
Building those statements with the ORM costs more CPU than running them (about 1 ms of query compilation for the
three-table read, against 0.1 ms), and catching a unique violation needs a savepoint (two more round trips). These
helpers keep the models as the single description of the tables: the SQL text is generated from them once per
database vendor, values are prepared and rows converted the way the ORM does it. Like QuerySet.bulk_create(), they
send no model signals (this project uses none).
"""

from django.db import connection
from django.db.models import Model

_sql: dict[tuple, str] = {}
_converters: dict[tuple, list] = {}


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def columns(model: type[Model], alias: str) -> str:
    """The model's columns, qualified by `alias`, in the order instance_from_row() expects."""
    return ", ".join(f"{alias}.{_quote(field.column)}" for field in model._meta.concrete_fields)


def instance_from_row(model: type[Model], values) -> Model:
    """A model instance from the values of columns(model), converted as the ORM converts them."""
    key = (model, connection.vendor)
    converters = _converters.get(key)
    if converters is None:
        table = model._meta.db_table
        converters = _converters[key] = [
            (i, field, connection.ops.get_db_converters(field.get_col(table)) + field.get_db_converters(connection))
            for i, field in enumerate(model._meta.concrete_fields)
        ]
    values = list(values)
    for i, field, field_converters in converters:
        for convert in field_converters:
            values[i] = convert(values[i], field, connection)
    return model.from_db(connection.alias, None, values)


def insert_or_ignore(obj: Model) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING. True (and obj.pk set) when the row was inserted; False when a unique
    constraint already holds such a row (a repeated hit id): nothing fails, so the caller's transaction needs no
    savepoint around it."""
    model = type(obj)
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    key = (model, connection.vendor)
    sql = _sql.get(key)
    if sql is None:
        sql = _sql[key] = (
            f"INSERT INTO {_quote(model._meta.db_table)} ({', '.join(_quote(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT DO NOTHING RETURNING {_quote(model._meta.pk.column)}"
        )
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return True


def update_row(obj: Model, **values) -> None:
    """UPDATE one row's columns by primary key (and set them on obj)."""
    model = type(obj)
    fields = [model._meta.get_field(name) for name in values]
    key = (model, connection.vendor, tuple(values))
    sql = _sql.get(key)
    if sql is None:
        assignments = ", ".join(f"{_quote(field.column)} = %s" for field in fields)
        sql = _sql[key] = (
            f"UPDATE {_quote(model._meta.db_table)} SET {assignments} WHERE {_quote(model._meta.pk.column)} = %s"
        )
    params = []
    for field, value in zip(fields, values.values(), strict=True):
        setattr(obj, field.name, value)
        params.append(field.get_db_prep_save(getattr(obj, field.attname), connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, obj.pk])


def exists(model: type[Model], **filters) -> bool:
    """Whether a row matches these column = value filters."""
    fields = [model._meta.get_field(name) for name in filters]
    key = (model, connection.vendor, "exists", tuple(filters))
    sql = _sql.get(key)
    if sql is None:
        conditions = " AND ".join(f"{_quote(field.column)} = %s" for field in fields)
        sql = _sql[key] = f"SELECT 1 FROM {_quote(model._meta.db_table)} WHERE {conditions} LIMIT 1"
    params = [field.get_db_prep_value(value, connection) for field, value in zip(fields, filters.values(), strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None
