"""What the beacon and the API record: contacts, visitors, visits, page views and custom event occurrences.

On PostgreSQL the raw tables (visits, page views, event occurrences, event debugger entries) are partitioned by
month on their time (tracking.partitions): their primary keys there are (id, time), so a foreign key that points
at one of them is not a database constraint (`db_constraint=False`; PostgreSQL can only refer to a whole primary
key). The ORM deletes and nulls those references as before, and retention drops whole months (docs/scaling.md).
The keys that make every recorded hit unique live in RecordedKey, outside the months, so a hit re-sent across a
month boundary is still recorded once.
"""

from django.db import models, transaction
from django.db.models.functions import Lower

from custom_events.metadata_schema import DEBUGGER_REASON
from custom_events.models import MarketingChannel
from paminga.fields import AccountForeignKey

METADATA_MAX_BYTES = 4096
URL_MAX_LENGTH = 2000
UTM_MAX_LENGTH = 200
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


class PageText(models.Model):
    """A page URL, title or referrer, stored once per account and referred to by every page view, visit and
    occurrence that holds it, as Matomo's log_action: a site has a few hundred pages and sources, and its millions of
    rows repeated them in full (134 bytes per recorded event at the demo mix). tracking.texts stores and purges them.

    Unique by a digest of the text rather than by the text: a B-tree entry is limited to about 2,700 bytes and a URL
    may hold 2,000 characters of up to 4 bytes each. The account leads the key, as in every unique key of the event
    tables (docs/scaling.md)."""

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="+", db_index=False)
    digest = models.BinaryField(max_length=16)
    value = models.TextField()
    # Set by a purge that found no row using the text, to the purge's own number; a recording that uses the text again
    # clears it, and the purge then keeps the text (tracking.texts).
    purge_mark = models.IntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "digest"], name="page_text_unique_digest")]

    def __str__(self) -> str:
        return self.value


class PageTextPurge(models.Model):
    """When an account's page texts were last purged (tracking.texts.page_texts_purge): retention purges again once
    settings.PAGE_TEXTS_PURGE_DAYS have passed."""

    account = models.OneToOneField("paminga.Account", on_delete=models.CASCADE, related_name="+")
    purged_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Page texts of {self.account_id} purged at {self.purged_at:%Y-%m-%d %H:%M}"


def _text_reference() -> AccountForeignKey:
    """A reference to a PageText. Neither a database constraint nor indexed: a constraint would make deleting a text
    scan every table that may refer to it, and an index would cost every insert more than the text saves. Texts are
    only ever deleted once no row uses them (tracking.texts.page_texts_purge)."""
    return AccountForeignKey(
        PageText,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )


def _text(reference: str, doc: str) -> property:
    """The text behind a PageText reference, read and set as a string (an empty one for no reference). A text set on
    a row is stored when the row is (TextsModel, TextsQuerySet, tracking.rows.rows_insert)."""
    pending, known, attname = "_text_" + reference, "_known_" + reference, reference + "_id"

    def get(self) -> str:
        value = self.__dict__.get(pending)
        if value is not None:
            return value
        pk = getattr(self, attname)
        if pk is None:
            return ""
        stored = self.__dict__.get(known)  # (id, text) as the row was stored with them
        if stored is not None and stored[0] == pk:
            return stored[1]
        try:
            return getattr(self, reference).value
        except PageText.DoesNotExist:
            return ""

    def set(self, value) -> None:
        self.__dict__[pending] = value or ""

    return property(get, set, doc=doc)


class TextsQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        from .texts import page_texts_store

        objs = list(objs)
        with transaction.atomic(using=self.db, savepoint=False):
            page_texts_store(objs)
            return super().bulk_create(objs, *args, **kwargs)


class TextsModel(models.Model):
    """A model with texts stored as PageText references: TEXTS maps each text's name to its reference."""

    TEXTS: dict[str, str] = {}

    objects = TextsQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        from .texts import page_texts_store

        with transaction.atomic(using=kwargs.get("using"), savepoint=False):
            page_texts_store([self])
            super().save(*args, **kwargs)


class UtmFields(TextsModel):
    utm_source = models.CharField(max_length=UTM_MAX_LENGTH, blank=True)
    utm_medium = models.CharField(max_length=UTM_MAX_LENGTH, blank=True)
    utm_campaign = models.CharField(max_length=UTM_MAX_LENGTH, blank=True)
    utm_term = models.CharField(max_length=UTM_MAX_LENGTH, blank=True)
    utm_content = models.CharField(max_length=UTM_MAX_LENGTH, blank=True)

    class Meta:
        abstract = True

    @property
    def utm(self) -> dict:
        return {f: getattr(self, f) for f in UTM_FIELDS}


class Contact(models.Model):
    """A person. Every beacon visitor starts as an anonymous contact (no email) and is merged into the
    known contact when identified, so one contact's history holds everything it did before and after."""

    # Indexed by contact_account_email (account first), like every account foreign key below that a composite index
    # starts with: a second index on the account alone would only cost every insert.
    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="contacts", db_index=False)
    # Stored lowercased: one person, one contact, whatever case an integration sends.
    email = models.EmailField(max_length=254, null=True, blank=True)
    score = models.IntegerField(default=0)
    fields = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    identified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                "account",
                Lower("email"),
                condition=models.Q(email__isnull=False),
                name="contact_unique_email_per_account",
            ),
        ]
        # Emails are stored lowercased and looked up with `email = %s`, which the unique index on lower(email) cannot
        # serve: without this index every API event would scan all of the account's contacts.
        indexes = [
            models.Index(fields=["account", "email"], name="contact_account_email"),
            # The contacts page lists them newest first, a page at a time: without it, every contact of the account
            # is sorted for each page.
            models.Index(fields=["account", "-created_at", "-id"], name="contact_account_recent"),
        ]

    def __str__(self) -> str:
        return self.email or f"Anonymous contact #{self.pk}"

    @property
    def is_anonymous(self) -> bool:
        return not self.email


class ContactTag(models.Model):
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["contact", "name"], name="contact_tag_unique")]

    def __str__(self) -> str:
        return self.name


class ContactList(models.Model):
    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="contact_lists")
    name = models.CharField(max_length=200)
    contacts = models.ManyToManyField(Contact, through="ContactListMembership", related_name="lists")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="contact_list_unique_name")]

    def __str__(self) -> str:
        return self.name


class ContactListMembership(models.Model):
    contact_list = models.ForeignKey(ContactList, on_delete=models.CASCADE)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact_list", "contact"], name="contact_list_membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.contact_list_id}"


class Visitor(models.Model):
    """A browser, known by the first-party id the beacon keeps on the customer's site."""

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="visitors", db_index=False)
    uid = models.CharField(max_length=64)
    contact = AccountForeignKey(Contact, on_delete=models.CASCADE, related_name="visitors")
    created_at = models.DateTimeField(auto_now_add=True)
    # When the visitor's latest visit started (Session.last_seen_at is its last activity).
    last_seen_at = models.DateTimeField()
    # The latest visit, read together with the visitor in one query on every hit.
    current_session = AccountForeignKey(
        "Session",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "uid"], name="visitor_unique_uid_per_account")]
        # Deleting visits (with a contact or an account) looks up the visitors that point at them: without it, one
        # scan of the whole table per deleted visit.
        indexes = [models.Index(fields=["current_session"], name="visitor_current_session")]

    def __str__(self) -> str:
        return self.uid


class Session(UtmFields):
    """A visit: ends after the account's inactivity timeout, or when the visitor arrives from another campaign."""

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="sessions", db_index=False)
    visitor = AccountForeignKey(Visitor, on_delete=models.CASCADE, related_name="sessions", db_index=False)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    landing_url_text = _text_reference()
    referrer_text = _text_reference()
    channel = models.CharField(max_length=32, choices=MarketingChannel.choices, default=MarketingChannel.UNKNOWN)

    class Meta:
        indexes = [
            models.Index(fields=["visitor", "-last_seen_at"], name="session_visitor_recent"),
            # Reports count visits per day and channel.
            models.Index(fields=["account", "started_at"], name="session_account_started"),
        ]

    TEXTS = {"landing_url": "landing_url_text", "referrer": "referrer_text"}
    landing_url = _text("landing_url_text", "The page the visit began on.")
    referrer = _text("referrer_text", "The page that sent the visitor.")

    def __str__(self) -> str:
        return f"Visit {self.pk} of {self.visitor_id}"


class Impression(UtmFields):
    """A page view recorded by the beacon (on load and on single-page-app navigation)."""

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="impressions", db_index=False)
    session = AccountForeignKey(
        Session, on_delete=models.CASCADE, related_name="impressions", db_index=False, db_constraint=False
    )
    # Neither indexed nor a database constraint: a visitor's page views are found through its visits (Session's
    # (visitor, last_seen_at) index, then this table's (session, occurred_at) one), which saves an index entry on
    # every page view, the biggest table; and a constraint without that index would make deleting a visitor scan
    # every page view of every account. A page view's visit is its visitor's: deleting the visit (Session.visitor
    # cascades) deletes the page view.
    visitor = AccountForeignKey(
        Visitor, on_delete=models.DO_NOTHING, related_name="impressions", db_index=False, db_constraint=False
    )
    url_text = _text_reference()
    title_text = _text_reference()
    referrer_text = _text_reference()
    channel = models.CharField(max_length=32, choices=MarketingChannel.choices, default=MarketingChannel.UNKNOWN)
    occurred_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["session", "-occurred_at"], name="impression_session_recent"),
            models.Index(fields=["account", "occurred_at"], name="impression_account_time"),
        ]

    TEXTS = {"url": "url_text", "title": "title_text", "referrer": "referrer_text"}
    url = _text("url_text", "The page's URL.")
    title = _text("title_text", "The page's title.")
    referrer = _text("referrer_text", "The page that linked to it.")

    def __str__(self) -> str:
        return self.url


class EventRecord(UtmFields):
    """One occurrence of a custom event, from the beacon or the API."""

    class Source(models.TextChoices):
        BEACON = "beacon", "Beacon"
        API = "api", "API"

    account = models.ForeignKey(
        "paminga.Account", on_delete=models.CASCADE, related_name="event_records", db_index=False
    )
    # Leads an index with the account and the time (see Meta), which also serves the database's foreign key check
    # when a definition's row is deleted. A definition's occurrences are removed by its background delete
    # (automations.deletes), batch by batch within the account, before its row goes: Django's cascade would load
    # them all at once.
    custom_event = models.ForeignKey(
        "custom_events.CustomEvent", on_delete=models.DO_NOTHING, related_name="records", db_index=False
    )
    contact = AccountForeignKey(Contact, on_delete=models.CASCADE, related_name="event_records", db_index=False)
    # The nullable foreign keys are indexed where they are set (see Meta): API events have no visitor or visit, and
    # few events a marketing source or an attributed impression.
    visitor = AccountForeignKey(
        Visitor, null=True, blank=True, on_delete=models.SET_NULL, related_name="event_records", db_index=False
    )
    session = AccountForeignKey(
        Session,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="event_records",
        db_index=False,
        db_constraint=False,
    )
    source = models.CharField(max_length=8, choices=Source.choices)
    occurred_at = models.DateTimeField()
    page_url_text = _text_reference()
    marketing_channel = models.CharField(max_length=32, choices=MarketingChannel.choices, blank=True)
    marketing_source = models.ForeignKey(
        "custom_events.MarketingSource",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    # The source name as sent, kept even when it matches no configured marketing source.
    marketing_source_name = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    metadata_dropped = models.BooleanField(default=False)
    metadata_bytes = models.PositiveIntegerField(default=0)
    # A snapshot of the definition's flag when the event fired: editing the definition never rewrites history.
    is_conversion = models.BooleanField(default=False)
    attributed_impression = AccountForeignKey(
        Impression,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="attributed_conversions",
        db_index=False,
        db_constraint=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["custom_event", "account", "occurred_at"], name="event_record_event_time"),
            models.Index(fields=["account", "occurred_at"], name="event_record_account_time"),
            models.Index(fields=["contact", "occurred_at"], name="event_record_contact_time"),
            *(
                models.Index(
                    fields=[name], condition=models.Q(**{f"{name}__isnull": False}), name=f"event_record_{name}"
                )
                for name in ("visitor", "session", "marketing_source")
            ),
            models.Index(
                fields=["attributed_impression"],
                condition=models.Q(attributed_impression__isnull=False),
                name="event_record_attributed",
            ),
            # The marketing sources page counts the recent events that named a source (few, API calls): without
            # it, a month of every event of the account is read.
            models.Index(
                fields=["account", "occurred_at"],
                condition=~models.Q(marketing_source_name=""),
                name="event_record_source_named",
            ),
        ]

    TEXTS = {"page_url": "page_url_text"}
    page_url = _text("page_url_text", "The page it happened on, or the URL the API gave.")

    def __str__(self) -> str:
        return f"{self.custom_event_id} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class RejectedHit(models.Model):
    """The event debugger: hits that were refused or altered, with the reason, so a marketer can see why an
    event does not show up as expected."""

    class Reason(models.TextChoices):
        UNKNOWN_EVENT = "UNKNOWN_EVENT", "Unknown or deleted event slug"
        METADATA_DROPPED = "METADATA_DROPPED", "Metadata over 4,096 bytes was dropped"
        INVALID_METADATA = "INVALID_METADATA", "Metadata is not a JSON object"
        METADATA_SCHEMA = DEBUGGER_REASON, "Metadata breaks the event's schema"  # the event's page lists these
        MALFORMED = "MALFORMED", "Malformed request body"
        TOO_LARGE = "TOO_LARGE", "Request body too large"
        DUPLICATE = "DUPLICATE", "Duplicate hit (already recorded)"
        FORBIDDEN_ORIGIN = "FORBIDDEN_ORIGIN", "Sent from a domain that is not the account's"
        INVALID_EMAIL = "INVALID_EMAIL", "identify() with an invalid email address"
        INVALID_CONTACT_TOKEN = "INVALID_CONTACT_TOKEN", "Contact link token invalid or expired"
        INVALID = "INVALID", "Invalid hit"

    account = models.ForeignKey(
        "paminga.Account", on_delete=models.CASCADE, related_name="rejected_hits", db_index=False
    )  # indexed with the time (see Meta)
    reason = models.CharField(max_length=32, choices=Reason.choices)
    message = models.CharField(max_length=500)
    slug = models.CharField(max_length=200, blank=True)
    excerpt = models.CharField(max_length=500, blank=True)
    # False when the hit was refused; True when it was recorded but altered (e.g. metadata dropped).
    recorded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"], name="rejected_hit_account_recent")]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class UntrackedHitCount(models.Model):
    """Hits answered but not recorded, per account, day (UTC) and reason: a visitor's privacy signal, or a bot. Only
    a count: nothing of the hit is kept, which is the point of not recording it."""

    class Reason(models.TextChoices):
        GPC = "GPC", "Global Privacy Control"
        DNT = "DNT", "Do Not Track"
        BOT_USER_AGENT = "BOT_USER_AGENT", "Bot or crawler (user agent)"
        AUTOMATED_BROWSER = "AUTOMATED_BROWSER", "Automated browser (navigator.webdriver)"

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    reason = models.CharField(max_length=32, choices=Reason.choices)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "day", "reason"], name="untracked_hit_count_unique")]

    def __str__(self) -> str:
        return f"{self.reason} on {self.day}: {self.count}"


class RecordedKey(models.Model):
    """The key of every recorded hit and API event, unique per account: a page view's hit id, a beacon event's hit
    id, an API event's idempotency key (or capture's id of it). An item delivered or sent again finds its key and is
    not recorded twice. Kept for INGEST_KEY_DAYS (the beacon gives up on a hit after a day), then deleted in one
    statement by the partition task: the raw tables hold no key, which keeps them small and lets their months be
    dropped whole."""

    pk = models.CompositePrimaryKey("account", "key")
    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=200)
    # The row recorded under the key: the page view (keys `page:...`) or the event occurrence. An API call repeated
    # with its key is answered as the event it recorded.
    record_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.key
