"""Cost limits on a GraphQL operation, checked during validation, before anything executes.

One API key must not be able to hold every server thread with a single request: a report costs tens of
milliseconds of database time, and a document can ask for it a hundred times under aliases. So each operation is
measured as written, with fragments expanded where they are spread:

- depth: how deeply selections nest (this schema has no cycles, so only introspection nests deep);
- aliases: how many fields are selected under another name (the way to ask for one field many times);
- cost: the sum of each field's cost. A root field costs 1 unless FIELD_COSTS says otherwise; nested fields cost
  0 unless they read figures of their own (each report field runs its own queries).

An operation over any limit is refused with `extensions.code` QUERY_TOO_COMPLEX. The limits are settings
(GRAPHQL_MAX_DEPTH, GRAPHQL_MAX_ALIASES, GRAPHQL_MAX_COST); FIELD_COSTS is checked against the schema by a test.
"""

from django.conf import settings
from graphql import GraphQLError, get_named_type, is_object_type
from graphql.language import FieldNode, FragmentSpreadNode, InlineFragmentNode
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from graphql.validation import ValidationRule

# "Type.field" -> cost. Reports: a whole-account report reads every event's figures; each field of a single event's
# report runs its own queries. A batch mutation records up to 100 events.
FIELD_COSTS = {
    "Query.custom_events_report": 20,
    "Query.conversions_report": 20,
    "Query.custom_event_report": 1,
    "CustomEventReport.figures": 10,
    "CustomEventReport.breakdown": 5,
    "CustomEventReport.attributed_pages": 5,
    "CustomEventReport.attributed_channels": 5,
    "CustomEventReport.metadata_keys": 5,
    "CustomEventReport.metadata_breakdown": 5,
    "CustomEventReport.occurrences": 5,
    "Query.custom_events": 2,
    "Mutation.triggerCustomEvents": 10,
}
# At most this many root fields per operation (aliases and fragments included); refused as INVALID_INPUT by
# paminga.graphql_view.RootFieldLimitRule, which says how to fire many events at once. Over it, this rule stays quiet
# so that the request gets that one, more useful, error.
MAX_ROOT_FIELDS = 100
_META_FIELDS = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}


def _too_complex(message: str, node) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": "QUERY_TOO_COMPLEX"})


class QueryComplexityRule(ValidationRule):
    def enter_operation_definition(self, node, *_args):
        root = self.context.schema.get_root_type(node.operation)
        if root is None:
            return  # an operation type the schema lacks: reported by the specified rules
        self._fragments: dict[str, tuple[int, int, int]] = {}
        self._root_fields = 0
        cost, depth, aliases = self._measure(node.selection_set, root, root=True, visiting=frozenset())
        if self._root_fields > MAX_ROOT_FIELDS:
            return
        if depth > settings.GRAPHQL_MAX_DEPTH:
            self.report_error(
                _too_complex(
                    f"The query nests {depth} levels deep; at most {settings.GRAPHQL_MAX_DEPTH} are allowed.", node
                )
            )
        elif aliases > settings.GRAPHQL_MAX_ALIASES:
            self.report_error(
                _too_complex(
                    f"The query uses {aliases} aliases; at most {settings.GRAPHQL_MAX_ALIASES} are allowed.",
                    node,
                )
            )
        elif cost > settings.GRAPHQL_MAX_COST:
            self.report_error(
                _too_complex(
                    f"The query's estimated cost is {cost}, over the budget of {settings.GRAPHQL_MAX_COST} per "
                    "request (a whole-account report costs 20, each field of a custom_event_report 5 to 10): "
                    "split it into several requests.",
                    node,
                )
            )

    def _measure(self, selection_set, parent, *, root: bool, visiting: frozenset) -> tuple[int, int, int]:
        """(cost, depth, aliases) of a selection set on `parent` (a named type, or None when unknown)."""
        cost = depth = aliases = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                name = selection.name.value
                aliases += selection.alias is not None
                self._root_fields += root
                field = _META_FIELDS.get(name) if root else None
                if field is None and parent is not None and is_object_type(parent):
                    field = parent.fields.get(name)
                if parent is not None:
                    cost += FIELD_COSTS.get(f"{parent.name}.{name}", 1 if root else 0)
                child = get_named_type(field.type) if field is not None else None
                sub_cost, sub_depth, sub_aliases = self._measure(
                    selection.selection_set, child, root=False, visiting=visiting
                )
                cost, aliases, depth = cost + sub_cost, aliases + sub_aliases, max(depth, 1 + sub_depth)
                continue
            if isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.context.schema.get_type(condition.name.value) if condition else parent
                measured = self._measure(selection.selection_set, target, root=root, visiting=visiting)
            elif isinstance(selection, FragmentSpreadNode):
                measured = self._fragment(selection.name.value, root=root, visiting=visiting)
            else:
                continue
            cost, depth, aliases = cost + measured[0], max(depth, measured[1]), aliases + measured[2]
        return cost, depth, aliases

    def _fragment(self, name: str, *, root: bool, visiting: frozenset) -> tuple[int, int, int]:
        # Measured once per operation and reused at every spread: a fragment spread twice in a fragment spread twice
        # in ... is counted in full without being walked exponentially many times. A cycle counts as nothing here;
        # NoFragmentCyclesRule refuses it.
        key = f"{name}:{root}"
        if name in visiting:
            return 0, 0, 0
        if key not in self._fragments:
            fragment = self.context.get_fragment(name)
            if fragment is None:
                return 0, 0, 0
            target = self.context.schema.get_type(fragment.type_condition.name.value)
            self._fragments[key] = self._measure(fragment.selection_set, target, root=root, visiting=visiting | {name})
        return self._fragments[key]
