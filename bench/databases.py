"""What the benches share to set themselves up: a PostgreSQL database of their own, and free loopback ports."""

import socket
from urllib.parse import urlsplit, urlunsplit


def _server_and_name(database_url: str) -> tuple[str, str]:
    """The URL of the same server's `postgres` database (to create and drop others from; its query, such as sslmode,
    kept) and the database's name."""
    parts = urlsplit(database_url.replace("postgres://", "postgresql://", 1))
    return urlunsplit(parts._replace(path="/postgres")), parts.path.lstrip("/")


def database_create(database_url: str, *, fresh: bool = False) -> str:
    """Creates the database of `database_url` when it does not exist yet (with `fresh`, drops it first). Returns
    the URL."""
    import psycopg
    from psycopg import sql

    server, name = _server_and_name(database_url)
    with psycopg.connect(server, autocommit=True) as conn:
        if fresh:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url


def database_drop(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    server, name = _server_and_name(database_url)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def free_port() -> int:
    """A loopback port nothing listens on (the system's pick, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
