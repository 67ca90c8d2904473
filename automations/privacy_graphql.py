"""A person's data through GraphQL: `export_contact` (a query) and `erase_contact` (a mutation), for the key's
account. The same services as the contact page and the commands (automations.privacy)."""

import graphene

from paminga.accounts import MANAGER_ROLES
from paminga.graphql_core import JSON, ApiError, account_from_info
from paminga.selectors import membership_role

from . import privacy


class PrivacyErrorCode(graphene.Enum):
    """Error codes of the privacy operations, beside the core's UNAUTHENTICATED and INTERNAL_ERROR:
    CONTACT_NOT_FOUND (no contact with the address in the account; field `email`), FORBIDDEN (a signed-in member
    who is not an owner or admin asked to erase)."""

    CONTACT_NOT_FOUND = "CONTACT_NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"


def _not_found(exc: privacy.ContactNotFound) -> ApiError:
    return ApiError(str(exc), code=PrivacyErrorCode.CONTACT_NOT_FOUND, field="email")


class PrivacyQuery(graphene.ObjectType):
    export_contact = JSON(
        email=graphene.String(required=True, description="The contact's email address (any case)."),
        description="Everything stored about a contact as one JSON document: the contact, its tags, lists and "
        "fields, visitors, visits, impressions, events and action runs (the contact page's download).",
    )

    def resolve_export_contact(root, info, email):
        account = account_from_info(info)
        try:
            return privacy.contact_export(account=account, email=email[:254])
        except privacy.ContactNotFound as exc:
            raise _not_found(exc) from None


class EraseContact(graphene.Mutation):
    """Erases a contact and everything recorded about them, in one transaction; true once done. Report figures
    stay as counts without the person. An audit entry records when and by which API key, not whom."""

    class Arguments:
        email = graphene.String(required=True, description="The contact's email address (any case).")

    Output = graphene.NonNull(graphene.Boolean)

    def mutate(root, info, email):
        account = account_from_info(info)
        request = info.context
        api_key = getattr(request, "api_key", None)
        # An API key acts for the whole account; a signed-in user (GraphiQL) needs the role the contact page asks.
        if api_key is None and membership_role(user=request.user, account=account) not in MANAGER_ROLES:
            raise ApiError("Only the account's owners and admins can erase a contact.", code=PrivacyErrorCode.FORBIDDEN)
        try:
            privacy.contact_erase(
                account=account,
                email=email[:254],
                erased_by=privacy.erased_by_label(user=getattr(request, "user", None), api_key=api_key),
            )
        except privacy.ContactNotFound as exc:
            raise _not_found(exc) from None
        return True


class PrivacyMutation(graphene.ObjectType):
    erase_contact = EraseContact.Field(description="Erases a contact and everything recorded about them.")
