import json
import re
import smtplib

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse
from django.utils import timezone

from paminga.site import site_url

from ..models import Action
from .base import ActionKind, PermanentError, RunContext, Setting, TransientError

METADATA_PREVIEW_CHARS = 4096


class NotifyEmail(ActionKind):
    kind = Action.Kind.NOTIFY_EMAIL
    label = "Send a notification email"
    description = "Email your team (not the contact) with the event, the contact and the event's metadata."
    transactional = False
    # Waits for identification: the team needs to know who the contact is.
    requires_known_contact = True
    settings = (
        Setting(
            name="to",
            label="Send to",
            type="emails",
            max_items=10,
            help_text="Up to 10 team addresses, separated by commas.",
            placeholder="sales@example.com",
        ),
        Setting(
            name="subject",
            label="Subject",
            required=False,
            max_length=200,
            help_text="Optional. Default: “<event name>: <contact email>”.",
        ),
    )

    @classmethod
    def summary(cls, config: dict) -> str:
        return f"Email {', '.join(config.get('to', []))}"

    def run(self, ctx: RunContext) -> str:
        event, record, contact = ctx.custom_event, ctx.event_record, ctx.contact
        # Line breaks in a header would be refused; the event name is the only part not validated as one line.
        subject = self.config.get("subject") or re.sub(r"[\x00-\x1f\x7f]+", " ", f"{event.name}: {contact.email}")
        metadata = (
            json.dumps(record.metadata, indent=2, ensure_ascii=False, sort_keys=True)[:METADATA_PREVIEW_CHARS]
            if record.metadata is not None
            else ("(dropped: over 4,096 bytes)" if record.metadata_dropped else "(none)")
        )
        lines = [
            f"The custom event “{event.name}” ({event.slug}) fired.",
            "",
            f"Contact:   {contact.email}",
            f"Time:      {timezone.localtime(record.occurred_at, ctx.account.tzinfo):%Y-%m-%d %H:%M:%S %Z}",
            f"Source:    {record.get_source_display()}",
            f"Page:      {record.page_url or '—'}",
            f"Conversion: {'yes' if record.is_conversion else 'no'}",
            "",
            "Metadata:",
            metadata,
            "",
            f"Contact page: {site_url()}{reverse('contacts:detail', args=[contact.pk])}",
        ]
        message = EmailMessage(
            subject=subject,
            body="\n".join(lines),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=self.config["to"],
            # The same id on every attempt, so a mail system (or a person) can tell a retry from a new event.
            headers={"X-Paminga-Delivery": str(ctx.run.pk)},
        )
        try:
            message.send(fail_silently=False)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"The mail server refused the recipients: {exc.recipients}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"Could not send the email: {exc}") from exc
        return f"Emailed {', '.join(self.config['to'])}"
