import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from automations.models import Action, ActionRun
from custom_events.models import CustomEvent, MarketingChannel, MarketingSource
from paminga.models import Account, Membership
from tracking.models import Contact, EventRecord, Impression, Session, Visitor


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    password = factory.django.Password("correct horse battery staple")


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Account {n}")
    slug = factory.Sequence(lambda n: f"account-{n}")
    domains = factory.LazyFunction(lambda: ["example.com"])


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    account = factory.SubFactory(AccountFactory)
    role = Membership.Role.OWNER


class CustomEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomEvent

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Event {n}")
    slug = factory.Sequence(lambda n: f"event-{n}")
    description = ""
    counts_as_conversion = False


class MarketingSourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MarketingSource

    account = factory.SubFactory(AccountFactory)
    name = factory.Sequence(lambda n: f"Source {n}")
    channel = MarketingChannel.REFERRAL


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    account = factory.SubFactory(AccountFactory)
    email = factory.Sequence(lambda n: f"contact{n}@example.com")


class VisitorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Visitor

    account = factory.SubFactory(AccountFactory)
    uid = factory.Sequence(lambda n: f"visitor-{n:08d}")
    contact = factory.SubFactory(ContactFactory, account=factory.SelfAttribute("..account"), email=None)
    last_seen_at = factory.LazyFunction(timezone.now)


class SessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Session
        skip_postgeneration_save = True

    visitor = factory.SubFactory(VisitorFactory)
    account = factory.SelfAttribute("visitor.account")
    started_at = factory.LazyFunction(timezone.now)
    last_seen_at = factory.SelfAttribute("started_at")
    landing_url = "https://example.com/"

    @factory.post_generation
    def latest_visit(obj, create, extracted, **kwargs):
        # Visits are started by tracking.services.session_for_hit, which keeps the visitor's latest one.
        latest = obj.visitor.current_session
        if create and (latest is None or latest.started_at <= obj.started_at):
            Visitor.objects.filter(pk=obj.visitor_id).update(current_session=obj)
            obj.visitor.current_session = obj


class ImpressionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Impression

    session = factory.SubFactory(SessionFactory)
    account = factory.SelfAttribute("session.account")
    visitor = factory.SelfAttribute("session.visitor")
    url = factory.Sequence(lambda n: f"https://example.com/page-{n}")
    occurred_at = factory.LazyFunction(timezone.now)


class EventRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EventRecord

    custom_event = factory.SubFactory(CustomEventFactory)
    account = factory.SelfAttribute("custom_event.account")
    contact = factory.SubFactory(ContactFactory, account=factory.SelfAttribute("..account"))
    source = EventRecord.Source.API
    occurred_at = factory.LazyFunction(timezone.now)
    is_conversion = factory.SelfAttribute("custom_event.counts_as_conversion")


class ActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Action

    custom_event = factory.SubFactory(CustomEventFactory)
    account = factory.SelfAttribute("custom_event.account")
    kind = Action.Kind.ADD_TAG
    config = factory.LazyFunction(lambda: {"tag": "engaged"})


class ActionRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ActionRun

    action = factory.SubFactory(ActionFactory)
    account = factory.SelfAttribute("action.account")
    custom_event = factory.SelfAttribute("action.custom_event")
    event_record = factory.SubFactory(
        EventRecordFactory,
        custom_event=factory.SelfAttribute("..custom_event"),
        account=factory.SelfAttribute("..account"),
    )
