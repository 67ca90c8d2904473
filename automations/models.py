from django.db import models

from paminga.fields import AccountForeignKey


class Action(models.Model):
    """One step run on every occurrence of a custom event. `kind` names a class in automations.actions."""

    class Kind(models.TextChoices):
        ADD_TAG = "add_tag", "Add a tag"
        REMOVE_TAG = "remove_tag", "Remove a tag"
        ADD_TO_LIST = "add_to_list", "Add to a list"
        CHANGE_SCORE = "change_score", "Change lead score"
        SET_FIELD = "set_field", "Set a contact field"
        NOTIFY_EMAIL = "notify_email", "Send a notification email"
        WEBHOOK = "webhook", "Call a webhook"

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="actions")
    custom_event = models.ForeignKey("custom_events.CustomEvent", on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    config = models.JSONField(default=dict, blank=True)
    # Optional: {"key": "planTier", "op": "equals", "value": "enterprise"} on the event's metadata.
    condition = models.JSONField(null=True, blank=True)
    position = models.PositiveIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["custom_event", "position", "id"]
        indexes = [models.Index(fields=["custom_event", "enabled", "position"], name="action_event_enabled")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.custom_event_id}"


class ActionRun(models.Model):
    """One action applied to one recorded event. Unique per pair, so a redelivered task cannot apply twice."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        WAITING = "waiting", "Waiting for identification"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="action_runs")
    action = models.ForeignKey(Action, on_delete=models.CASCADE, related_name="runs")
    # Denormalised from the action so that an event's run log is one index range scan, however many runs exist.
    custom_event = models.ForeignKey("custom_events.CustomEvent", on_delete=models.CASCADE, related_name="action_runs")
    # Not a database constraint: event occurrences are partitioned by month on PostgreSQL (tracking.models).
    event_record = AccountForeignKey(
        "tracking.EventRecord", on_delete=models.CASCADE, related_name="action_runs", db_constraint=False
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # What the run did, in words for the run log and the contact timeline ("Added tag vip", "HTTP 200").
    result = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The account first in every unique key of the event tables, so that distributing them by account
        # (docs/scaling.md) needs no change of schema.
        constraints = [
            models.UniqueConstraint(fields=["account", "action", "event_record"], name="action_run_unique_per_event")
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="action_run_status"),
            models.Index(fields=["account", "-created_at"], name="action_run_account_recent"),
            models.Index(fields=["custom_event", "-id"], name="action_run_event_recent"),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


FINISHED_STATUSES = frozenset({ActionRun.Status.SUCCEEDED, ActionRun.Status.SKIPPED, ActionRun.Status.FAILED})

# --- Reporting rollups (automations.reports) ------------------------------------------------------------------
# Daily sums of recorded events, page views and visits, per account and day in the account's time zone. They are
# rebuilt from the raw rows by a periodic task (automations.reports.rollups); reports add the raw rows recorded
# since the last run, so every figure is exact at any time. See docs/reporting.md.


class ReportRollupWatermark(models.Model):
    """How far the rollups have read one raw table: every row with an id up to `upto_id` is in them."""

    table = models.CharField(max_length=32, unique=True)
    upto_id = models.BigIntegerField(default=0)
    # The watermark before the last run: the next run rereads the rows after it, so a row whose transaction was
    # still open during one run (its id below that run's watermark) is counted by the next.
    previous_upto_id = models.BigIntegerField(default=0)
    # How many rows (previous_upto_id, upto_id] held when the last run folded them in. The next run counts them
    # again: more means a row committed late below the watermark (its transaction was still open), fewer that rows
    # were deleted meanwhile; either way the days of those rows are rebuilt from the raw rows.
    folded_rows = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.table} up to {self.upto_id}"


class ReportAccountRollup(models.Model):
    """An account whose rollups are complete, and the time zone their days are in. A changed time zone (or no
    row) means the rollups are not used and are rebuilt by the next run."""

    account = models.OneToOneField("paminga.Account", on_delete=models.CASCADE, related_name="report_rollup")
    time_zone = models.CharField(max_length=64)
    rebuilt_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Rollups of {self.account_id} in {self.time_zone}"


class ReportRebuild(models.Model):
    """An account's rollups being rebuilt from scratch (first run, a time zone change, `reports_rollup --rebuild`):
    one chunk of days per transaction, so a rebuild of a big account shows progress and, interrupted, resumes
    where it stopped. Reports read the raw rows until it is finished (no ReportAccountRollup in its time zone)."""

    account = models.OneToOneField("paminga.Account", on_delete=models.CASCADE, related_name="+")
    time_zone = models.CharField(max_length=64)
    # The watermarks the rebuild reads up to ({"events": id, ...}); rows after them are folded in when it finishes.
    upto = models.JSONField(default=dict)
    # The local days to rebuild (none when the account has no rows yet), and the last day done.
    day_from = models.DateField(null=True)
    day_to = models.DateField(null=True)
    done_through = models.DateField(null=True)
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Rebuild of {self.account_id} in {self.time_zone} through {self.done_through}"

    @property
    def finished(self) -> bool:
        return self.day_from is None or (self.done_through is not None and self.done_through >= self.day_to)


class ReportDirtyDay(models.Model):
    """A day whose rolled-up figures are out of date because recorded rows changed (a contact merge moved
    events to another contact). Reports read such a day from the raw rows until the next run rebuilds it."""

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Not unique: the run deletes exactly the rows it read, so a mark made while it ran survives it.
        indexes = [models.Index(fields=["account", "day"], name="report_dirty_day_account")]

    def __str__(self) -> str:
        return f"{self.account_id} {self.day}"


class EventDailyRollup(models.Model):
    """One custom event's occurrences on one day, with HyperLogLog sketches of its contacts and visitors."""

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="+")
    custom_event = models.ForeignKey("custom_events.CustomEvent", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    fires = models.PositiveIntegerField(default=0)
    conversions = models.PositiveIntegerField(default=0)
    # Conversions attributed to a page view (beacon conversions in a visit that had one).
    attributed = models.PositiveIntegerField(default=0)
    # Serialized HyperLogLog sketches of the distinct contact and visitor ids (automations.reports.aggregates):
    # unique people over any range are the estimate of the union of its days' sketches, a few KB a day whatever
    # the day holds. Empty: nobody.
    contact_sketch = models.BinaryField(default=b"")
    visitor_sketch = models.BinaryField(default=b"")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "day", "custom_event"], name="event_daily_rollup_unique")
        ]

    def __str__(self) -> str:
        return f"{self.custom_event_id} on {self.day}: {self.fires}"


class EventDailyBreakdown(models.Model):
    """One custom event's occurrences on one day that share one value of a dimension (a channel, a page, a UTM
    source, a metadata value...)."""

    class Dimension(models.TextChoices):
        SOURCE = "source", "Source"
        CHANNEL = "channel", "Marketing channel"
        UTM_SOURCE = "utm_source", "UTM source"
        UTM_MEDIUM = "utm_medium", "UTM medium"
        UTM_CAMPAIGN = "utm_campaign", "UTM campaign"
        PAGE = "page", "Page"
        ATTRIBUTED_PAGE = "attributed_page", "Page of the attributed page view"
        ATTRIBUTED_CHANNEL = "attributed_channel", "Channel of the attributed page view"
        METADATA = "metadata", "Metadata value"

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="+")
    custom_event = models.ForeignKey("custom_events.CustomEvent", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    dimension = models.CharField(max_length=24, choices=Dimension.choices)
    # The metadata key for Dimension.METADATA, empty otherwise.
    key = models.CharField(max_length=100, blank=True)
    value = models.CharField(max_length=500, blank=True)
    fires = models.PositiveIntegerField(default=0)
    conversions = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            # The event report: one event, one dimension, a range of days.
            models.Index(fields=["custom_event", "dimension", "key", "day"], name="event_breakdown_event"),
            # The conversions report: every event of the account, one dimension, a range of days.
            models.Index(fields=["account", "dimension", "day"], name="event_breakdown_account"),
        ]

    def __str__(self) -> str:
        return f"{self.custom_event_id} {self.dimension}={self.value} on {self.day}: {self.fires}"


class TrafficDailyRollup(models.Model):
    """Page views per page and visits per channel on one day: the denominators of conversion rates."""

    class Dimension(models.TextChoices):
        PAGE_VIEWS = "page_views", "Page views by page"
        VISITS = "visits", "Visits by channel"

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    dimension = models.CharField(max_length=16, choices=Dimension.choices)
    value = models.CharField(max_length=500, blank=True)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["account", "dimension", "day"], name="traffic_daily_account")]

    def __str__(self) -> str:
        return f"{self.dimension}={self.value} on {self.day}: {self.count}"


class ReportRawHorizon(models.Model):
    """The first local day whose raw rows are all still stored, per account: retention deleted everything before
    it. Rollups of earlier days are then the only record of those days, so they are never rebuilt from the (gone)
    raw rows; see automations.privacy.retention_run."""

    account = models.OneToOneField("paminga.Account", on_delete=models.CASCADE, related_name="+")
    raw_from = models.DateField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Raw rows of {self.account_id} from {self.raw_from}"


# --- Privacy (automations.privacy) ----------------------------------------------------------------------------


class ContactErasure(models.Model):
    """That a contact was erased: when and by whom, never whom (that would keep what was erased). The counts say
    how many rows went, for the operator's audit."""

    account = models.ForeignKey("paminga.Account", on_delete=models.CASCADE, related_name="contact_erasures")
    erased_at = models.DateTimeField(auto_now_add=True)
    # "user <username>", "API key <name>" or "command": who asked, as a label that outlives the user or key.
    erased_by = models.CharField(max_length=200)
    counts = models.JSONField(default=dict)
    # When the page texts that only the contact's rows used were purged (automations.privacy.erasure_texts_purge),
    # after the erasure committed; None until then, and retention runs it for any erasure still waiting.
    texts_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-erased_at", "-id"]

    def __str__(self) -> str:
        return f"Erasure in {self.account_id} at {self.erased_at:%Y-%m-%d %H:%M} by {self.erased_by}"


# --- Deletes in the background (automations.deletes) ------------------------------------------------------------


class BackgroundDelete(models.Model):
    """The removal of something that may own millions of rows (a custom event, a marketing source, an account).
    The thing is hidden at once (its `deleted_at`), and a Celery task removes its rows in small batches, each its
    own short transaction, recording its progress here; the settings page shows it."""

    class Kind(models.TextChoices):
        CUSTOM_EVENT = "custom_event", "Custom event"
        MARKETING_SOURCE = "marketing_source", "Marketing source"
        ACCOUNT = "account", "Account"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting"
        RUNNING = "running", "Deleting"
        DONE = "done", "Done"

    # Not a foreign key: the row outlives the account it deleted (an audit of what went).
    account_pk = models.BigIntegerField()
    kind = models.CharField(max_length=24, choices=Kind.choices)
    target_id = models.BigIntegerField()
    # What the user knew it as ("Requested Demo (requested-demo)"): the target row is gone at the end.
    label = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Rows to remove when it started (an estimate: capture may add a few), and removed so far.
    rows_total = models.BigIntegerField(default=0)
    rows_done = models.BigIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One job per thing: deleting twice (a double click, a retried request) finds the first one.
            models.UniqueConstraint(fields=["kind", "target_id"], name="background_delete_unique_target")
        ]
        indexes = [models.Index(fields=["account_pk", "status"], name="background_delete_account")]

    def __str__(self) -> str:
        return f"{self.kind} {self.target_id}: {self.rows_done}/{self.rows_total} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return min(99, int(100 * self.rows_done / self.rows_total)) if self.rows_total else 0
