"""Helpers for the GraphQL tests."""

import json


class GraphQLClient:
    """Posts GraphQL documents to /graphql/ with an API key, as an integration would."""

    def __init__(self, client, secret: str | None):
        self.client = client
        self.secret = secret

    def post(self, query: str, variables: dict | None = None, *, secret: str | None = None):
        body = {"query": query}
        if variables is not None:
            body["variables"] = variables
        headers = {"HTTP_AUTHORIZATION": f"Bearer {secret or self.secret}"} if (secret or self.secret) else {}
        return self.client.post("/graphql/", json.dumps(body), content_type="application/json", **headers)

    def __call__(self, query: str, variables: dict | None = None, **kwargs) -> dict:
        response = self.post(query, variables, **kwargs)
        assert response.status_code in (200, 400), response.content
        return response.json()


def error_of(answer: dict) -> dict:
    """The extensions of the only error of an answer."""
    assert len(answer.get("errors", [])) == 1, answer
    return answer["errors"][0]["extensions"]


def event_record_row(e) -> tuple:
    """Everything an event record holds, with database ids replaced by what they stand for: two paths that record
    the same events give the same rows."""
    from tests.keys import row_key
    from tracking.models import UTM_FIELDS

    return (
        e.custom_event.slug,
        e.contact.email,
        e.visitor.uid if e.visitor else None,
        e.session_id is not None,
        e.source,
        e.occurred_at,
        e.created_at,
        e.page_url,
        e.marketing_channel,
        e.marketing_source.name if e.marketing_source else None,
        e.marketing_source_name,
        json.dumps(e.metadata, sort_keys=True),
        e.metadata_dropped,
        e.metadata_bytes,
        e.is_conversion,
        e.attributed_impression_id,
        row_key(e),
        *(getattr(e, name) for name in UTM_FIELDS),
    )
