import pytest

from paminga.services import api_key_create

from .utils import GraphQLClient


@pytest.fixture
def api_secret(account):
    return api_key_create(account=account, name="Integration")[1]


@pytest.fixture
def other_api_secret(other_account):
    return api_key_create(account=other_account, name="Globex integration")[1]


@pytest.fixture
def gql(client, api_secret):
    """gql(query, variables) -> the JSON answer, acting for `account` with an API key."""
    return GraphQLClient(client, api_secret)


@pytest.fixture
def gql_other(client, other_api_secret):
    """The same, acting for `other_account`."""
    return GraphQLClient(client, other_api_secret)
