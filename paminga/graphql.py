"""The GraphQL schema: one Query and one Mutation composed from the apps. Field names stay snake_case
(auto_camelcase=False), as the spec writes them; the checked-in schema.graphql is printed from this."""

import graphene

from automations.graphql import AutomationsMutation, AutomationsQuery


class Query(AutomationsQuery, graphene.ObjectType):
    ping = graphene.Boolean(required=True, description="Always true: the API is reachable and the key is valid.")

    def resolve_ping(root, info):
        from .graphql_core import account_from_info

        account_from_info(info)
        return True


class Mutation(AutomationsMutation, graphene.ObjectType):
    pass


schema = graphene.Schema(query=Query, mutation=Mutation, auto_camelcase=False)
