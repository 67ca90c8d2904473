"""A real Chromium (through Playwright) against the app on a live server, with test pages served from another
origin (127.0.0.1 on another port, as a customer's site would be) by a tiny HTTP server.

Ports come from TRACKING_TEST_PORTS (default 8100-8199). The `browser` fixture (tests/browser.py) skips without
Chromium unless REQUIRE_BROWSER=1.
"""

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler


def free_port(host: str = "127.0.0.1") -> int:
    first, _, last = os.environ.get("TRACKING_TEST_PORTS", "8100-8199").partition("-")
    for port in range(int(first), int(last or first) + 1):
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"No free port in {first}-{last}")


class _Handler(StaticFilesHandler):
    """With an in-memory SQLite test database every thread shares one connection, so requests (and the test's own
    queries, see wait_until) take turns; on PostgreSQL each server thread has its own connection and nothing waits."""

    serialize = False

    def __call__(self, environ, start_response):
        if not self.serialize:
            return super().__call__(environ, start_response)
        with DB_LOCK:
            return super().__call__(environ, start_response)


DB_LOCK = threading.RLock()


@pytest.fixture(scope="module")
def app_server(browser, django_db_setup, django_db_blocker):
    """The app, threaded, at http://localhost:<port>."""
    from django.db import connections
    from django.test.testcases import LiveServerThread

    with django_db_blocker.unblock():
        shared = {c.alias: c for c in connections.all() if c.vendor == "sqlite" and c.is_in_memory_db()}
        _Handler.serialize = bool(shared)
        for connection in shared.values():
            connection.inc_thread_sharing()
        server = LiveServerThread("localhost", _Handler, connections_override=shared, port=free_port())
        server.daemon = True
        server.start()
        server.is_ready.wait()
        if server.error:
            raise server.error
    server.url = f"http://localhost:{server.port}"
    yield server
    server.terminate()
    for connection in shared.values():
        connection.dec_thread_sharing()


class _Pages(BaseHTTPRequestHandler):
    pages: dict[str, str] = {}

    def do_GET(self):  # noqa: N802 - the http.server API
        body = self.pages.get(self.path.split("?")[0])
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write((body or "not found").encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_server():
    """The customer's site: serves `pages` (path → HTML) at http://127.0.0.1:<port>, another origin than the app."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Pages)
    server.pages = _Pages.pages = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def wait_until(condition, timeout: float = 8.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with DB_LOCK:
            if condition():
                return
        time.sleep(0.05)
    raise AssertionError(f"Timed out waiting for {what}")
