"""Model fields shared by the apps."""

from django.conf import settings
from django.db import models
from django.db.models.lookups import Exact
from django.db.models.sql.where import AND, WhereNode


class AccountForeignKey(models.ForeignKey):
    """A reference from one of an account's rows to another of the same account's (an occurrence's visit, a page
    view's visitor): both models have an `account`. With JOINS_MATCH_ACCOUNT on, every join the ORM makes along it,
    either way, matches the account as well as the id: `ON (b.id = a.b_id AND (b.account_id = a.account_id))`.

    That is what distributing the event tables by account (docs/scaling.md, Citus) needs of a join: both rows on one
    worker; and a join then never reaches another account's row, whatever an id holds. Off (the default) the joins
    go by id alone, as a plain foreign key's: on one PostgreSQL the planner takes the two conditions for independent
    and misjudges every such join. The column, its index and its constraint are a plain foreign key's either way.

    Not in the subquery Django writes for an exclude() across a many-valued relation (its outer table is not
    known there): that subquery is matched by id alone."""

    def get_extra_restriction(self, alias, related_alias):
        # `alias` is the referred-to table's (this field's model's is `related_alias`), either way round: a reverse
        # join calls this through the relation with the two swapped back.
        if alias is None or related_alias is None or not settings.JOINS_MATCH_ACCOUNT:
            return None
        target = self.remote_field.model._meta.get_field("account")
        source = self.model._meta.get_field("account")
        return WhereNode([Exact(target.get_col(alias), source.get_col(related_alias))], connector=AND)
