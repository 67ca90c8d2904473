"""SQL for the beacon's hot path, built once from the models' metadata.

Every beacon hit reads its visitor (with the contact and latest visit) and inserts one row; some update a visit.
Building those statements with the ORM costs more CPU than running them (about 1 ms of query compilation for the
three-table read, against 0.1 ms), and catching a unique violation needs a savepoint (two more round trips). These
helpers keep the models as the single description of the tables: the SQL text is generated from them once per
database vendor, values are prepared and rows converted the way the ORM does it. Like QuerySet.bulk_create(), they
send no model signals (this project uses none).
"""

import functools
from types import SimpleNamespace

from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections, models, transaction
from django.db.models import Model

_sql: dict[tuple, str] = {}
_converters: dict[tuple, list] = {}


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def columns(model: type[Model], alias: str) -> str:
    """The model's columns, qualified by `alias`, in the order instance_from_row() expects."""
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)


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
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT DO NOTHING RETURNING {quote(model._meta.pk.column)}"
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
        assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
        sql = _sql[key] = (
            f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s"
        )
    params = []
    for field, value in zip(fields, values.values(), strict=True):
        setattr(obj, field.name, value)
        params.append(field.get_db_prep_save(getattr(obj, field.attname), connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, obj.pk])


def move_forward(obj: Model, field_name: str, value) -> None:
    """UPDATE one row's column to `value` unless it already holds a later one (and set it on obj). The condition is
    on the row itself, so PostgreSQL checks it again after waiting for a concurrent update of the row: a late hit
    cannot move a visit's last activity back over a newer one."""
    model = type(obj)
    field = model._meta.get_field(field_name)
    key = (model, connection.vendor, "forward", field_name)
    sql = _sql.get(key)
    if sql is None:
        column = quote(field.column)
        sql = _sql[key] = (
            f"UPDATE {quote(model._meta.db_table)} SET {column} = %s "
            f"WHERE {quote(model._meta.pk.column)} = %s AND {column} < %s"
        )
    setattr(obj, field.attname, max(value, getattr(obj, field.attname)))
    prepared = field.get_db_prep_save(value, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [prepared, obj.pk, prepared])


def exists(model: type[Model], **filters) -> bool:
    """Whether a row matches these column = value filters."""
    fields = [model._meta.get_field(name) for name in filters]
    key = (model, connection.vendor, "exists", tuple(filters))
    sql = _sql.get(key)
    if sql is None:
        conditions = " AND ".join(f"{quote(field.column)} = %s" for field in fields)
        sql = _sql[key] = f"SELECT 1 FROM {quote(model._meta.db_table)} WHERE {conditions} LIMIT 1"
    params = [field.get_db_prep_value(value, connection) for field, value in zip(fields, filters.values(), strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


# --- A beacon hit in one statement ---------------------------------------------------------------------------------
#
# Most hits are one of two kinds: they continue a visit that is still open (a page view or an event of a returning
# visitor, no campaign change), or they are a new visitor's first hit. For those, one statement does what the
# general path (tracking.services.hit_record) does in several round trips and a transaction: it checks that its case
# applies, then writes the visitor (with its anonymous contact and first visit) or moves the open visit's last
# activity, and inserts the impression or the event. A single statement in autocommit is one transaction. When its
# case does not apply the statement writes nothing, and the caller takes the general path, which stays the reference
# for every rule (tests compare the rows both write). Events with actions always take the general path: it creates
# their runs in the same transaction. The statements are prepared on the server (parsed and planned once per
# connection), and their columns and types come from the models.
#
# Both statements end in the same CTE `v` (the visitor and its visit: visitor_id, contact_id, session_id, channel and
# the visit's UTM fields), from which the impression or event row is inserted.

HIT_PATHS = ("open-visit", "new-visitor")


def cast_type(model: type[Model], attname: str) -> str:
    """The column's type for CAST(), without a varchar's length: an explicit cast to varchar(n) silently cuts a
    longer value, where the insert into the column refuses it (values are clipped to their lengths before)."""
    field = next(field for field in model._meta.concrete_fields if field.attname == attname)
    db_type = field.cast_db_type(connection)
    return "varchar" if db_type.startswith("varchar(") else db_type


def insert_select(model: type[Model], prefix: str, given: dict[str, str], source: str, suffix: str = "") -> str:
    """INSERT INTO model SELECT ... FROM source: the `given` SQL expressions for some columns, and for every other
    column (but the primary key) the parameter %(<prefix><attname>)s, cast to the column's type."""
    fields = [field for field in model._meta.concrete_fields if field.attname in given or not field.primary_key]
    values = [given.get(f.attname) or f"CAST(%({prefix}{f.attname})s AS {cast_type(model, f.attname)})" for f in fields]
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"SELECT {', '.join(values)} FROM {source}{suffix}"
    )


# Field classes whose get_db_prep_save() returns a value of these Python types unchanged on PostgreSQL and SQLite:
# row_params() passes such values as they are, and asks the field for anything else (JSON, a naive datetime, ...).
_AS_IS = {
    models.CharField: (str,),
    models.EmailField: (str,),
    models.TextField: (str,),
    models.BooleanField: (bool,),
    models.IntegerField: (int,),
    models.PositiveIntegerField: (int,),
    models.PositiveSmallIntegerField: (int,),
    models.BigIntegerField: (int,),
    models.ForeignKey: (int,),
}
_plans: dict[tuple, list] = {}


def _row_plan(model: type[Model], prefix: str, given) -> list:
    key = (model, prefix, tuple(given))
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = [
            (f"{prefix}{field.attname}", field, _AS_IS.get(type(field), ()), bool(getattr(field, "auto_now_add", 0)))
            for field in model._meta.concrete_fields
            if not field.primary_key and field.attname not in given
        ]
    return plan


def row_params(obj: Model, prefix: str, given=()) -> dict:
    """The parameters of insert_select() for `obj`: each column's value prepared as the ORM saves it (pre_save(), then
    get_db_prep_save(), skipped where they are known to change nothing: on every hit, they are a large part of the
    CPU the statement costs)."""
    params = {}
    db = connections[DEFAULT_DB_ALIAS]  # not the proxy: each attribute read through it is a context-local lookup
    for name, field, as_is, auto_now_add in _row_plan(type(obj), prefix, given):
        value = field.pre_save(obj, True) if auto_now_add else getattr(obj, field.attname)
        if value is not None and type(value) not in as_is:
            value = field.get_db_prep_save(value, db)
        params[name] = value
    return params


def values_params(model: type[Model], prefix: str, values: dict, given=()) -> dict:
    """row_params() for a row given as {attname: value} instead of a model instance, where building the instance
    would cost more than the statement's parameters: a column not in `values` takes its field's default, an
    auto_now_add column the time now, as a save would (and that time is set in `values`, as a save sets it on the
    instance)."""
    db = connections[DEFAULT_DB_ALIAS]
    return {
        name: _prepared(field, as_is, auto_now_add, values, db)
        for name, field, as_is, auto_now_add in _row_plan(model, prefix, given)
    }


def _prepared(field, as_is: tuple, auto_now_add: bool, values: dict, db):
    if auto_now_add:
        value = values[field.attname] = field.pre_save(SimpleNamespace(), True)
    elif field.attname in values:
        value = values[field.attname]
    else:
        value = field.get_default()
    if value is not None and type(value) not in as_is:
        value = field.get_db_prep_save(value, db)
    return value


def insert_rows(model: type[Model], rows: list[dict]) -> list[int]:
    """Inserts rows given as {attname: value} with one statement and returns their ids, in order (PostgreSQL).

    Each value is prepared as values_params() prepares it, and the rows are sent as one array per column, unnest()ed:
    what QuerySet.bulk_create() sends on PostgreSQL too, without building a model instance per row and preparing each
    of its values through the SQL compiler (most of a batch's CPU)."""
    plan = _row_plan(model, "", ())
    key = (model, "insert_rows", connection.vendor)
    query = _sql.get(key)
    if query is None:
        arrays = ", ".join(f"CAST(%s AS {cast_type(model, field.attname)}[])" for _, field, _, _ in plan)
        query = _sql[key] = (
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for _, f, _, _ in plan)}) "
            f"SELECT * FROM unnest({arrays}) RETURNING {quote(model._meta.pk.column)}"
        )
    db = connections[DEFAULT_DB_ALIAS]
    columns = [
        [_prepared(field, as_is, auto_now_add, row, db) for row in rows] for _, field, as_is, auto_now_add in plan
    ]
    with db.cursor() as cursor:
        cursor.execute(query, columns)
        return [row[0] for row in cursor.fetchall()]


def hit_row_params(row: Model) -> dict:
    """The parameters of the impression or event row of a hit statement."""
    return row_params(row, "hit_", _hit_row_given(type(row)))


@functools.cache
def _hit_row_given(model: type[Model]) -> dict[str, str]:
    """What the impression or event row takes from the visit (`v`) rather than from its own parameters."""
    from .models import UTM_FIELDS, Impression

    given = {"visitor_id": "v.visitor_id", "session_id": "v.session_id"}
    if model is Impression:
        return given | {"channel": "v.channel"}  # its UTM fields are its own URL's
    return given | {
        "contact_id": "v.contact_id",
        "marketing_channel": "v.channel",
        **{name: f"v.{quote(name)}" for name in UTM_FIELDS},  # an event carries its visit's campaign
        # A conversion is attributed to the visit's most recent impression at the event's time.
        "attributed_impression_id": (
            f'CASE WHEN %(attribute)s THEN (SELECT i."id" FROM {quote(Impression._meta.db_table)} i '
            'WHERE i."session_id" = v.session_id AND i."occurred_at" <= %(hit_occurred_at)s '
            'ORDER BY i."occurred_at" DESC, i."id" DESC LIMIT 1) END'
        ),
    }


def _hit_sql(path: str, kind: str) -> str:
    from automations.models import Action

    from .models import UTM_FIELDS, Contact, EventRecord, Impression, Session, Visitor

    model = Impression if kind == "impression" else EventRecord
    pk = quote(model._meta.pk.column)
    ignore_duplicate = f" ON CONFLICT DO NOTHING RETURNING {pk}"  # the open-visit insert; see new-visitor's
    visitor, session = quote(Visitor._meta.db_table), quote(Session._meta.db_table)
    # Events with actions take the general path.
    no_actions = (
        f'NOT EXISTS (SELECT 1 FROM {quote(Action._meta.db_table)} a WHERE a."custom_event_id" = %(event_id)s)'
        if model is EventRecord
        else "TRUE"
    )
    utm = ", ".join(f"s.{quote(name)}" for name in UTM_FIELDS)
    if path == "open-visit":
        ctes = [
            f'v AS (SELECT v."id" AS visitor_id, v."contact_id", s."id" AS session_id, s."last_seen_at", s."channel", '
            f'{utm} FROM {visitor} v JOIN {session} s ON s."id" = v."current_session_id" '
            'WHERE v."account_id" = %(account_id)s AND v."uid" = %(uid)s '
            # Open at the hit's time: started before it, active within the inactivity timeout...
            'AND s."started_at" <= %(hit_occurred_at)s AND s."last_seen_at" >= %(open_since)s '
            # ...and continued by the hit: no UTM parameters, or the visit's own.
            f"AND (NOT %(has_campaign)s OR ({utm}) = ({', '.join(f'%(campaign_{name})s' for name in UTM_FIELDS)})) "
            f"AND {no_actions})",
            f"ins AS ({insert_select(model, 'hit_', _hit_row_given(model), 'v', ignore_duplicate)})",
            # The visit's last activity moves when the hit was recorded, by at least the precision it is kept to.
            # The condition is on the row itself, so that it is checked again after waiting for a concurrent hit's
            # update: a late hit does not move the activity back over a newer one.
            f'touch AS (UPDATE {session} SET "last_seen_at" = %(hit_occurred_at)s FROM v WHERE {session}."id" = '
            f'v.session_id AND {session}."last_seen_at" <= %(touch_before)s AND EXISTS (SELECT 1 FROM ins))',
        ]
    elif path == "new-visitor":
        sequence = "nextval(pg_get_serial_sequence('{}', 'id'))"
        returning = ", ".join(
            f"CAST(%(session_{name})s AS {cast_type(Session, name)}) AS {quote(name)}"
            for name in ("channel", *UTM_FIELDS)
        )
        # A repeated hit id writes nothing (not even the visitor), as the general path rolls its transaction back.
        hit_key = "client_id" if model is Impression else "idempotency_key"
        ctes = [
            # The new rows' ids come first: the visitor points at its contact and its first visit (foreign keys are
            # checked at commit), and those are written only when the visitor is (a concurrent first hit of the same
            # visitor inserts nothing here, and this hit takes the general path).
            f"ids AS (SELECT {sequence.format(Contact._meta.db_table)} AS contact_id, "
            f"{sequence.format(Session._meta.db_table)} AS session_id WHERE {no_actions} AND NOT EXISTS (SELECT 1 "
            f'FROM {quote(model._meta.db_table)} r WHERE r."account_id" = %(account_id)s AND r.{quote(hit_key)} = '
            f"%(hit_{hit_key})s))",
            "v AS ("
            + insert_select(
                Visitor,
                "visitor_",
                {"contact_id": "ids.contact_id", "current_session_id": "ids.session_id"},
                "ids",
                ' ON CONFLICT DO NOTHING RETURNING "id" AS visitor_id, "contact_id", "current_session_id" AS '
                f"session_id, {returning}",
            )
            + ")",
            f"c AS ({insert_select(Contact, 'contact_', {'id': 'v.contact_id'}, 'v')})",
            f"s AS ({insert_select(Session, 'session_', {'id': 'v.session_id', 'visitor_id': 'v.visitor_id'}, 'v')})",
            # Without ON CONFLICT: when the same id is recorded meanwhile (passing the check in `ids` at once), the
            # unique violation undoes the whole statement, visitor included; hit_statement() then answers "not
            # applied" and the general path finds the duplicate.
            f"ins AS ({insert_select(model, 'hit_', _hit_row_given(model), 'v', f' RETURNING {pk}')})",
        ]
    else:
        raise ValueError(path)
    return f"WITH {', '.join(ctes)} SELECT EXISTS (SELECT 1 FROM v), (SELECT {pk} FROM ins)"


def hit_sql(path: str, kind: str) -> str:
    key = ("hit", path, kind, connection.vendor)
    if key not in _sql:
        _sql[key] = _hit_sql(path, kind)
    return _sql[key]


# Django keeps psycopg's prepared statements off (prepare_threshold None), and then psycopg neither prepares a query
# nor counts the ones Django sends (counting would keep their text, values included, on every connection). The
# threshold is lifted just while a hit statement, which asks to be prepared, runs.
_PREPARE_WHEN_ASKED = 2**31 - 1


def _execute_prepared(raw, query: str, params: dict) -> tuple:
    import psycopg

    previous, raw.prepare_threshold = raw.prepare_threshold, _PREPARE_WHEN_ASKED
    try:
        with psycopg.Cursor(raw) as cursor:
            cursor.execute(query, params, prepare=True)
            return cursor.fetchone()
    finally:
        raw.prepare_threshold = previous


def hit_statement(path: str, kind: str, params: dict) -> tuple[bool, int | None]:
    """Runs the statement of one path ("open-visit" or "new-visitor") for an "impression" or an "event", on
    PostgreSQL. Returns (applied, id): applied is False when the path does not apply, and nothing was written; id is
    None when the hit's id was already recorded (a duplicate)."""
    # Retrying is safe: the hit's id makes a statement that did commit before the connection broke answer
    # "duplicate". A new visitor's hit whose id is recorded meanwhile fails on the unique index and writes nothing.
    row = prepared_statement(hit_sql(path, kind), params, retry=True, none_on_unique_violation=path == "new-visitor")
    return (False, None) if row is None else tuple(row)


def prepared_statement(query: str, params: dict, *, retry: bool, none_on_unique_violation: bool = False):
    """Runs one statement, prepared on the server (parsed and planned once per connection), and returns its row (None
    when it returns none).

    Without Django's per-request health check (a `SELECT 1` round trip before the first query): a connection the
    database dropped fails here instead. With `retry`, that connection is replaced and the statement sent once more,
    which only a statement that is safe to repeat may ask for. With `none_on_unique_violation`, a unique violation
    (the statement lost a race to insert a row) answers None instead of raising: the statement wrote nothing."""
    import psycopg

    db = connections[DEFAULT_DB_ALIAS]
    for attempt in (1, 2):
        try:
            with db.wrap_database_errors:
                db.ensure_connection()
                # Inside a transaction (tests, a caller's atomic block) a failed statement must not abort it.
                savepoint = transaction.savepoint() if db.in_atomic_block else None
                try:
                    row = _execute_prepared(db.connection, query, params)
                except psycopg.Error as exc:
                    if savepoint:
                        transaction.savepoint_rollback(savepoint)
                    if none_on_unique_violation and isinstance(exc, psycopg.errors.UniqueViolation):
                        return None
                    raise
                if savepoint:
                    transaction.savepoint_commit(savepoint)
            return row
        except OperationalError:
            if not retry or attempt == 2 or db.in_atomic_block:
                raise
            db.close()
    raise AssertionError("unreachable")
