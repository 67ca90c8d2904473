"""Writes for automations: configuring actions, creating runs for recorded events, running them, and the sweep.

A run's life: created with its event (pending; waiting while the contact is anonymous and the kind needs a known
contact; skipped when the condition does not hold) → enqueued after commit → claimed by a worker → succeeded,
retrying (transient error, backoff) or failed (permanent error, or out of attempts). See docs/automations.md.
"""

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Max
from django.utils import timezone

from custom_events.models import CustomEvent
from tracking.models import Contact, EventRecord

from .actions import ActionError, PermanentError, RunContext, TransientError, kind_get
from .cache import actions_cache_clear, event_actions_version, event_has_no_actions_remember
from .conditions import condition_clean, condition_describe, condition_matches
from .models import Action, ActionRun

logger = logging.getLogger(__name__)

MAX_ACTIONS_PER_EVENT = 20
ERROR_MAX_CHARS = 2000
RESULT_MAX_CHARS = 500
RUNNABLE = (ActionRun.Status.PENDING, ActionRun.Status.RETRYING)
ENQUEUE_CHUNK = 500

# ---------------------------------------------------------------------------------------------------------------
# Configuring actions


def _action_clean(*, kind: str, config, condition) -> tuple[dict, dict | None]:
    kind_cls = kind_get(kind)
    if kind_cls is None:
        raise ValidationError(
            {
                "kind": ValidationError(
                    "Unknown action type “%(kind)s”. Choose one of: %(kinds)s.",
                    code="invalid_kind",
                    params={"kind": str(kind)[:50], "kinds": ", ".join(Action.Kind.values)},
                )
            }
        )
    errors: dict = {}
    cleaned_config: dict = {}
    cleaned_condition = None
    try:
        cleaned_config = kind_cls.clean_config(config)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    try:
        cleaned_condition = condition_clean(condition)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    if errors:
        raise ValidationError(errors)
    return cleaned_config, cleaned_condition


def action_create(
    *, custom_event: CustomEvent, kind: str, config: dict, condition: dict | None = None, enabled: bool = True
) -> Action:
    """Adds an action at the end of the event's list. ValidationError keyed by setting name on bad input."""
    cleaned_config, cleaned_condition = _action_clean(kind=kind, config=config, condition=condition)
    with transaction.atomic():
        # Serialises concurrent additions to one event, so the limit and the positions hold.
        list(CustomEvent.objects.select_for_update().filter(pk=custom_event.pk).values_list("pk", flat=True))
        existing = Action.objects.filter(custom_event=custom_event)
        if existing.count() >= MAX_ACTIONS_PER_EVENT:
            raise ValidationError(
                "An event can have at most %(max)d actions.",
                code="too_many_actions",
                params={"max": MAX_ACTIONS_PER_EVENT},
            )
        last = existing.aggregate(last=Max("position"))["last"]
        action = Action(
            account_id=custom_event.account_id,
            custom_event=custom_event,
            kind=kind,
            config=cleaned_config,
            condition=cleaned_condition,
            enabled=bool(enabled),
            position=0 if last is None else last + 1,
        )
        action.full_clean()
        action.save()
        actions_cache_clear(custom_event_id=custom_event.pk)
    return action


def action_update(*, action: Action, **fields) -> Action:
    """Changes an action's config, condition and/or enabled flag (its kind is fixed: add another action instead)."""
    allowed = {"config", "condition", "enabled"}
    for key in fields:
        if key not in allowed:
            raise TypeError(f"action_update() got an unexpected field {key!r}")
    config, condition = _action_clean(
        kind=action.kind,
        config=fields.get("config", action.config),
        condition=fields.get("condition", action.condition),
    )
    action.config, action.condition = config, condition
    if "enabled" in fields:
        action.enabled = bool(fields["enabled"])
    action.full_clean()
    with transaction.atomic():
        action.save()
        actions_cache_clear(custom_event_id=action.custom_event_id)
    return action


def action_move(*, action: Action, position: int) -> Action:
    """Moves the action to `position` (0 is first; clamped to the list) and renumbers the event's actions."""
    with transaction.atomic():
        ordered = list(Action.objects.select_for_update().filter(custom_event_id=action.custom_event_id))
        ordered = [a for a in ordered if a.pk != action.pk]
        ordered.insert(max(0, min(int(position), len(ordered))), action)
        changed = []
        for index, item in enumerate(ordered):
            if item.position != index or item.pk == action.pk:
                item.position = index
                changed.append(item)
        Action.objects.bulk_update(changed, ["position"])
        actions_cache_clear(custom_event_id=action.custom_event_id)
    return action


def action_delete(*, action: Action) -> None:
    """Deletes the action and its run history, and closes the gap in the positions."""
    with transaction.atomic():
        event_id = action.custom_event_id
        action.delete()
        remaining = list(Action.objects.select_for_update().filter(custom_event_id=event_id))
        for index, item in enumerate(remaining):
            item.position = index
        Action.objects.bulk_update(remaining, ["position"])
        actions_cache_clear(custom_event_id=event_id)


# ---------------------------------------------------------------------------------------------------------------
# Creating runs (the tracking hot path) and resuming them


def _enabled_actions(custom_event_id: int) -> list[tuple[int, str, dict | None]]:
    no_actions, version = event_actions_version(custom_event_id=custom_event_id)
    if no_actions:
        return []
    actions = list(
        Action.objects.filter(custom_event_id=custom_event_id, enabled=True)
        .order_by("position", "id")
        .values_list("pk", "kind", "condition")
    )
    if not actions:
        event_has_no_actions_remember(custom_event_id=custom_event_id, version=version)
    return actions


def action_runs_create(*, event_record: EventRecord) -> list[ActionRun]:
    """One run per enabled action of the event, written in the caller's transaction (so a run exists exactly when
    its event does) and enqueued after commit. Runs for an anonymous contact wait for identification when their
    kind needs a known contact; runs whose condition does not hold are recorded as skipped and never enqueued.
    An event without enabled actions costs one cache lookup and no query."""
    return action_runs_create_many(event_records=[event_record])


def action_runs_create_many(*, event_records: list[EventRecord]) -> list[ActionRun]:
    """action_runs_create() for many recorded events at once (a batch from the API): each event's enabled actions
    are looked up once per custom event, every run is written with one bulk insert, and the pending ones are
    enqueued after commit in one callback (none when there is nothing to enqueue)."""
    actions_by_event: dict[int, list] = {}
    now = timezone.now()
    runs = []
    for event_record in event_records:
        event_id = event_record.custom_event_id
        if event_id not in actions_by_event:
            actions_by_event[event_id] = _enabled_actions(event_id)
        actions = actions_by_event[event_id]
        if not actions:
            continue
        anonymous = event_record.contact.is_anonymous
        for action_id, kind, condition in actions:
            run = ActionRun(
                account_id=event_record.account_id,
                action_id=action_id,
                custom_event_id=event_id,
                event_record=event_record,
            )
            kind_cls = kind_get(kind)
            if not condition_matches(condition, event_record.metadata):
                run.status = ActionRun.Status.SKIPPED
                run.result = f"Condition not met: {condition_describe(condition)}"[:RESULT_MAX_CHARS]
                run.finished_at = now
            elif anonymous and (kind_cls is None or kind_cls.requires_known_contact):
                run.status = ActionRun.Status.WAITING
            runs.append(run)
    if not runs:
        return []
    ActionRun.objects.bulk_create(runs)
    pending = [run.pk for run in runs if run.status == ActionRun.Status.PENDING]
    if pending:
        transaction.on_commit(partial(action_runs_enqueue, run_ids=pending))
    return runs


def action_runs_resume(*, contact: Contact) -> int:
    """Called in the transaction that identifies a contact (after an anonymous contact was merged into it or was
    given its email): the runs that waited for identification become pending and are enqueued after commit.
    Returns how many."""
    if contact.is_anonymous:
        return 0
    waiting = ActionRun.objects.filter(
        account_id=contact.account_id, status=ActionRun.Status.WAITING, event_record__contact_id=contact.pk
    )
    run_ids = list(waiting.order_by("pk").values_list("pk", flat=True))
    resumed = 0
    for start in range(0, len(run_ids), ENQUEUE_CHUNK):
        chunk = run_ids[start : start + ENQUEUE_CHUNK]
        resumed += ActionRun.objects.filter(pk__in=chunk, status=ActionRun.Status.WAITING).update(
            status=ActionRun.Status.PENDING
        )
    if run_ids:
        transaction.on_commit(partial(action_runs_enqueue, run_ids=run_ids))
    return resumed


def action_run_retry(*, run: ActionRun) -> ActionRun:
    """Runs a failed run again (e.g. after fixing a webhook endpoint), with a fresh set of attempts."""
    if run.status != ActionRun.Status.FAILED:
        raise ValidationError("Only failed runs can be run again.", code="not_failed")
    with transaction.atomic():
        updated = ActionRun.objects.filter(pk=run.pk, status=ActionRun.Status.FAILED).update(
            status=ActionRun.Status.PENDING, attempts=0, next_attempt_at=None, finished_at=None
        )
        if updated:
            transaction.on_commit(partial(action_runs_enqueue, run_ids=[run.pk]))
    run.refresh_from_db()
    return run


# The broker is down until this time.monotonic() value, as far as this process knows (see action_runs_enqueue).
_broker_down_until = 0.0


def action_runs_enqueue(*, run_ids: list[int], force: bool = False) -> int:
    """Sends a task per run; returns how many were sent. Broker errors are logged, never raised: the runs stay in
    the database and the sweep enqueues them again. After a failure this process stops trying for a few seconds
    (unless forced, as the sweep does), so an outage does not slow every tracked event down."""
    global _broker_down_until
    from paminga.celery import app

    from .tasks import action_run_task

    if not force and not app.conf.task_always_eager and time.monotonic() < _broker_down_until:
        logger.info("Broker recently unreachable; leaving %d action run(s) to the sweep", len(run_ids))
        return 0
    for sent, run_id in enumerate(run_ids):
        try:
            action_run_task.delay(run_id)
        except Exception:  # noqa: BLE001 - whatever the broker client raises, the request must not fail
            _broker_down_until = time.monotonic() + settings.AUTOMATIONS_BROKER_BACKOFF_SECONDS
            logger.warning(
                "Could not enqueue action run %s (%d left unsent); the sweep will pick them up",
                run_id,
                len(run_ids) - sent,
                exc_info=True,
            )
            return sent
    return len(run_ids)


# ---------------------------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class RunOutcome:
    status: str
    # Seconds until the next attempt, when the task should retry.
    retry_in: int | None = None


def _retry_delay(attempts: int) -> int:
    return min(
        settings.AUTOMATIONS_RETRY_BACKOFF_SECONDS * 2 ** max(0, attempts - 1),
        settings.AUTOMATIONS_RETRY_BACKOFF_MAX_SECONDS,
    )


def _load_for_update(run_id: int) -> ActionRun | None:
    """The run, locked, if it can run now. A second delivery of the same task blocks here until the first one
    commits, then finds the run finished and does nothing."""
    return (
        ActionRun.objects.select_for_update(of=("self",))
        .select_related(
            "action", "account", "event_record__custom_event", "event_record__contact", "event_record__page_url_text"
        )
        .filter(pk=run_id, status__in=RUNNABLE)
        .first()
    )


def _finish(run: ActionRun, *, status: str, result: str = "", error: str | None = None, started: float) -> None:
    run.status = status
    run.result = result[:RESULT_MAX_CHARS]
    if error is not None:
        run.last_error = error[:ERROR_MAX_CHARS]
    run.finished_at = timezone.now()
    run.next_attempt_at = None
    run.duration_ms = max(0, round((time.monotonic() - started) * 1000))
    run.save(
        update_fields=[
            "status",
            "result",
            "last_error",
            "attempts",
            "started_at",
            "finished_at",
            "next_attempt_at",
            "duration_ms",
        ]
    )


def _precheck(run: ActionRun) -> tuple[str, str] | tuple[None, dict]:
    """(status, reason) when the run should not apply its effect now; else (None, the cleaned config)."""
    action, record = run.action, run.event_record
    kind_cls = kind_get(action.kind)
    if not action.enabled:
        return ActionRun.Status.SKIPPED, "The action was disabled before it ran."
    if not condition_matches(action.condition, record.metadata):
        return ActionRun.Status.SKIPPED, f"Condition not met: {condition_describe(action.condition)}"
    if kind_cls is None:
        return ActionRun.Status.FAILED, f"Unknown action type “{action.kind}”."
    if kind_cls.requires_known_contact and record.contact.is_anonymous:
        return ActionRun.Status.WAITING, ""
    try:
        return None, kind_cls.clean_config(action.config)
    except ValidationError as exc:
        messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        return ActionRun.Status.FAILED, f"Invalid configuration ({messages})"


def action_run_execute(*, run_id: int) -> RunOutcome | None:
    """Runs one action run once; returns what the task should do next (None when the run no longer exists).

    Database effects (tags, lists, score, fields) are applied in the same transaction that marks the run
    succeeded, under a lock on the run: exactly once, even when the task is delivered twice or the worker dies
    half-way. Effects outside the database (email, webhook) are claimed first (status running), performed outside
    any transaction and then recorded: at least once, with the run id sent along so receivers can deduplicate."""
    started = time.monotonic()
    try:
        with transaction.atomic():
            run = _load_for_update(run_id)
            if run is None:
                # Gone, or not runnable (finished, waiting, or running elsewhere): nothing to do.
                status = ActionRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
                return None if status is None else RunOutcome(status)
            run.attempts += 1
            run.started_at = timezone.now()
            status, config = _precheck(run)
            if status is not None:
                return _settle(run, status=status, reason=config, started=started)
            kind_cls = kind_get(run.action.kind)
            ctx = RunContext(run=run, event_record=run.event_record, contact=run.event_record.contact)
            if kind_cls.transactional:
                result = kind_cls(config).run(ctx)
                _finish(run, status=ActionRun.Status.SUCCEEDED, result=result, started=started)
                return RunOutcome(ActionRun.Status.SUCCEEDED)
            # Claimed: another delivery now finds the run running and leaves it alone.
            run.status = ActionRun.Status.RUNNING
            run.save(update_fields=["status", "attempts", "started_at"])
    except Exception as exc:  # noqa: BLE001 - rolled back: the effect did not happen; record the attempt
        return _record_failure(run_id, exc, started=started, claimed_attempt=None)

    try:
        result = kind_cls(config).run(ctx)
    except Exception as exc:  # noqa: BLE001 - classified in _record_failure
        return _record_failure(run_id, exc, started=started, claimed_attempt=run.attempts)
    with transaction.atomic():
        claimed = (
            ActionRun.objects.select_for_update()
            .filter(pk=run_id, status=ActionRun.Status.RUNNING, attempts=run.attempts)
            .first()
        )
        if claimed is not None:
            _finish(claimed, status=ActionRun.Status.SUCCEEDED, result=result, started=started)
    return RunOutcome(ActionRun.Status.SUCCEEDED)


def _settle(run: ActionRun, *, status: str, reason: str, started: float) -> RunOutcome:
    """Records a run that did not apply its effect: skipped, failed for its configuration, or back to waiting."""
    if status == ActionRun.Status.WAITING:
        # Not an attempt: the run waits for identification (action_runs_resume) as if it had just been created.
        ActionRun.objects.filter(pk=run.pk).update(status=status)
    elif status == ActionRun.Status.FAILED:
        _finish(run, status=status, error=reason, started=started)
    else:
        _finish(run, status=status, result=reason, started=started)
    return RunOutcome(status)


def _classify(exc: Exception) -> tuple[bool, str]:
    """(transient?, message for the run log)."""
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, PermanentError):
        return False, str(exc)
    if isinstance(exc, TransientError):
        return True, str(exc)
    if isinstance(exc, SoftTimeLimitExceeded):
        return True, "The action took longer than the task time limit."
    if isinstance(exc, DatabaseError):
        return True, f"Database error: {exc}"
    if isinstance(exc, ActionError):
        return False, str(exc)
    # A bug or an unforeseen failure: retried (it may be passing), bounded by the attempt limit, and logged.
    logger.exception("Unexpected error in an action run")
    return True, f"Unexpected error: {exc.__class__.__name__}: {exc}"


def _record_failure(run_id: int, exc: Exception, *, started: float, claimed_attempt: int | None) -> RunOutcome:
    transient, message = _classify(exc)
    with transaction.atomic():
        runs = ActionRun.objects.select_for_update().filter(pk=run_id)
        if claimed_attempt is None:
            # Transactional kinds: the attempt was rolled back with the effect; count it now.
            run = runs.filter(status__in=RUNNABLE).first()
            if run is None:
                return RunOutcome(ActionRun.objects.values_list("status", flat=True).get(pk=run_id))
            run.attempts += 1
            run.started_at = timezone.now()
        else:
            run = runs.filter(status=ActionRun.Status.RUNNING, attempts=claimed_attempt).first()
            if run is None:
                return RunOutcome(ActionRun.objects.values_list("status", flat=True).get(pk=run_id))
        if not transient:
            _finish(run, status=ActionRun.Status.FAILED, error=message, started=started)
            return RunOutcome(ActionRun.Status.FAILED)
        if run.attempts >= settings.AUTOMATIONS_MAX_ATTEMPTS:
            _finish(
                run,
                status=ActionRun.Status.FAILED,
                error=f"Gave up after {run.attempts} attempts. Last error: {message}",
                started=started,
            )
            return RunOutcome(ActionRun.Status.FAILED)
        delay = _retry_delay(run.attempts)
        run.status = ActionRun.Status.RETRYING
        run.last_error = message[:ERROR_MAX_CHARS]
        run.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        run.duration_ms = max(0, round((time.monotonic() - started) * 1000))
        run.save(update_fields=["status", "last_error", "attempts", "started_at", "next_attempt_at", "duration_ms"])
    return RunOutcome(ActionRun.Status.RETRYING, retry_in=delay)


# ---------------------------------------------------------------------------------------------------------------
# The sweep: what a lost message, a broker outage or a dead worker left behind


@dataclass(frozen=True)
class SweepResult:
    enqueued: int
    not_enqueued: int
    stale_recovered: int
    waiting_expired: int


def action_runs_sweep(*, older_than: timedelta | None = None, limit: int = 5000) -> SweepResult:
    """Enqueues runs left pending (their message was never sent or was lost) or overdue for a retry; retries runs
    whose worker died mid-run; skips runs that waited too long for identification. Safe to run at any time and
    from several places at once: a run enqueued twice still runs once."""
    now = timezone.now()
    older_than = timedelta(seconds=settings.AUTOMATIONS_SWEEP_AFTER_SECONDS) if older_than is None else older_than
    cutoff = now - older_than
    stale_cutoff = now - timedelta(seconds=settings.AUTOMATIONS_STALE_RUNNING_SECONDS)
    Status = ActionRun.Status

    stale_recovered = 0
    with transaction.atomic():
        stale = list(
            ActionRun.objects.select_for_update(skip_locked=True).filter(
                status=Status.RUNNING, started_at__lt=stale_cutoff
            )[:limit]
        )
        for run in stale:
            message = "The worker stopped while running this action (crash or time limit)."
            if run.attempts >= settings.AUTOMATIONS_MAX_ATTEMPTS:
                run.status, run.finished_at = Status.FAILED, now
                run.last_error = f"Gave up after {run.attempts} attempts. Last error: {message}"
            else:
                run.status, run.next_attempt_at, run.last_error = Status.RETRYING, now, message
            run.save(update_fields=["status", "finished_at", "last_error", "next_attempt_at"])
            stale_recovered += 1

    pending_ids = list(
        ActionRun.objects.filter(status=Status.PENDING, created_at__lte=cutoff)
        .exclude(next_attempt_at__gt=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    retry_ids = list(
        ActionRun.objects.filter(status=Status.RETRYING, next_attempt_at__lte=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    run_ids = pending_ids + retry_ids
    enqueued = 0
    for start in range(0, len(run_ids), ENQUEUE_CHUNK):
        chunk = run_ids[start : start + ENQUEUE_CHUNK]
        sent = action_runs_enqueue(run_ids=chunk, force=True)
        # Not again before another interval, so that a long queue is not flooded with copies of the same run.
        # (Two sweeps at once may both send a run: harmless, it still runs once.)
        ActionRun.objects.filter(pk__in=chunk[:sent], status__in=RUNNABLE).update(
            next_attempt_at=now + max(older_than, timedelta(seconds=60))
        )
        enqueued += sent
        if sent < len(chunk):
            break

    expire_before = now - timedelta(days=settings.AUTOMATIONS_WAITING_EXPIRE_DAYS)
    waiting_expired = ActionRun.objects.filter(
        pk__in=list(
            ActionRun.objects.filter(status=Status.WAITING, created_at__lt=expire_before).values_list("pk", flat=True)[
                :limit
            ]
        )
    ).update(
        status=Status.SKIPPED,
        finished_at=now,
        result=f"The visitor was not identified within {settings.AUTOMATIONS_WAITING_EXPIRE_DAYS} days.",
    )
    return SweepResult(
        enqueued=enqueued,
        not_enqueued=len(run_ids) - enqueued,
        stale_recovered=stale_recovered,
        waiting_expired=waiting_expired,
    )
