"""The GraphQL schema: one Query and one Mutation composed from the apps. Field names stay snake_case."""

import graphene


class Query(graphene.ObjectType):
    ping = graphene.Boolean(required=True, description="Always true: the API is reachable.")

    def resolve_ping(root, info):
        return True


schema = graphene.Schema(query=Query, auto_camelcase=False)
