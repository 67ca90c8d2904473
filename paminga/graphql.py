"""The GraphQL schema: one Query and one Mutation composed from the apps. Field names stay snake_case
(auto_camelcase=False), as the spec writes them; the checked-in schema.graphql is printed from this."""

import graphene

from automations.graphql import AutomationsMutation, AutomationsQuery
from automations.privacy_graphql import PrivacyMutation, PrivacyQuery
from automations.reports.graphql import ReportsQuery
from custom_events.graphql import CustomEventsMutation, CustomEventsQuery
from tracking.graphql import TrackingMutation


class Query(CustomEventsQuery, AutomationsQuery, ReportsQuery, PrivacyQuery, graphene.ObjectType):
    """Reads, scoped to the account of the API key (or of the logged-in user in GraphiQL)."""

    ping = graphene.Boolean(required=True, description="Always true: the API is reachable and the key is valid.")

    def resolve_ping(root, info):
        from .graphql_core import account_from_info

        account_from_info(info)
        return True


class Mutation(TrackingMutation, CustomEventsMutation, AutomationsMutation, PrivacyMutation, graphene.ObjectType):
    """Writes, scoped to the account of the API key (or of the logged-in user in GraphiQL)."""


schema = graphene.Schema(query=Query, mutation=Mutation, auto_camelcase=False)
