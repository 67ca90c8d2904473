from django.core.exceptions import ValidationError
from django.db.models import F
from django.db.models.functions import Greatest, Least

from tracking.models import Contact

from ..models import Action
from .base import ActionKind, RunContext, Setting

SCORE_LIMIT = 1_000_000
DELTA_LIMIT = 1000


class ChangeScore(ActionKind):
    kind = Action.Kind.CHANGE_SCORE
    label = "Change lead score"
    description = "Add points to the contact's lead score, or take them away with a negative number."
    # Additive: it runs for anonymous visitors too, and identification carries it over (tracking.contact_merge).
    requires_known_contact = False
    settings = (
        Setting(
            name="delta",
            label="Points",
            type="integer",
            min_value=-DELTA_LIMIT,
            max_value=DELTA_LIMIT,
            help_text=f"A whole number from -{DELTA_LIMIT} to {DELTA_LIMIT}, e.g. 10 or -5.",
            placeholder="10",
        ),
    )

    @classmethod
    def validate(cls, config: dict) -> None:
        if config.get("delta") == 0:
            raise ValidationError({"delta": ValidationError("Zero points would change nothing.", code="zero")})

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Change score by {config.get('delta', 0):+d}"

    def run(self, ctx: RunContext) -> str:
        delta = self.config["delta"]
        # One UPDATE, so concurrent runs on the same contact never lose an increment; clamped so the score
        # stays far from the column's integer range.
        Contact.objects.filter(pk=ctx.contact.pk).update(
            score=Greatest(Least(F("score") + delta, SCORE_LIMIT), -SCORE_LIMIT)
        )
        score = Contact.objects.values_list("score", flat=True).get(pk=ctx.contact.pk)
        return f"Score {delta:+d} (now {score})"
