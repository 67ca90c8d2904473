import pytest
from django.core.cache import cache

from paminga.cache import memo_clear_all
from tracking.privacy import untracked_counts_reset

from .browser import browser, page  # noqa: F401 - Playwright fixtures for every test module
from .factories import AccountFactory, MembershipFactory, UserFactory


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings):
    # Password hashing is deliberately slow; tests do not need that.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Tasks run in-process unless a test starts a real worker (tests/automations/test_worker.py).
    from paminga.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    cache.clear()
    memo_clear_all()
    untracked_counts_reset()
    yield
    app.conf.task_always_eager = eager
    cache.clear()
    memo_clear_all()


@pytest.fixture
def account(db):
    return AccountFactory(name="Acme", slug="acme", domains=["acme.test"])


@pytest.fixture
def other_account(db):
    return AccountFactory(name="Globex", slug="globex", domains=["globex.test"])


@pytest.fixture
def user(account):
    user = UserFactory(username="owner@acme.test")
    MembershipFactory(user=user, account=account)
    return user


@pytest.fixture
def client_logged_in(client, user):
    client.force_login(user)
    return client
