from django.db import models


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
    event_record = models.ForeignKey("tracking.EventRecord", on_delete=models.CASCADE, related_name="action_runs")
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
        constraints = [models.UniqueConstraint(fields=["action", "event_record"], name="action_run_unique_per_event")]
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
