import pytest

from automations import services, tasks
from tests.factories import ContactFactory, CustomEventFactory
from tracking.ingest import event_record


@pytest.fixture(autouse=True)
def _automations_defaults(settings):
    # The webhook tests talk to a loopback server.
    settings.AUTOMATIONS_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    services._broker_down_until = 0.0
    yield
    services._broker_down_until = 0.0


@pytest.fixture
def event(account):
    return CustomEventFactory(account=account, name="Requested Demo", slug="requested-demo")


@pytest.fixture
def contact(account):
    return ContactFactory(account=account, email="jane@example.com")


@pytest.fixture
def anonymous_contact(account):
    return ContactFactory(account=account, email=None)


@pytest.fixture
def fire(django_capture_on_commit_callbacks):
    """Records an event through tracking.ingest.event_record, the ingester's writer, and runs on-commit work."""

    def fire(custom_event, contact, metadata=None, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            record, _ = event_record(
                account=custom_event.account,
                custom_event=custom_event,
                contact=contact,
                source=kwargs.pop("source", "api"),
                metadata=metadata,
                **kwargs,
            )
        return record

    return fire


@pytest.fixture(scope="session")
def httpserver_listen_address():
    """The loopback webhook receiver listens on a port in the range reserved for this app's test servers."""
    import socket

    for port in range(8340, 8360):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return ("127.0.0.1", port)
    raise RuntimeError("No free port in 8340-8359 for the test webhook server")


@pytest.fixture
def sent(monkeypatch):
    """Task ids published, instead of running them."""
    published: list[int] = []
    monkeypatch.setattr(tasks.action_run_task, "delay", lambda run_id: published.append(run_id))
    return published
