"""The webhooks app: listens to the SMS and integration apps' signals (``webhooks.receivers``)
and registers its Celery tasks, which the rest of the app queues by name."""

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import webhooks.tasks  # noqa: F401 - registers the tasks webhooks.outbox queues by name
        from integration.signals import balance_fell_below_threshold
        from sms.signals import recipients_status_changed_batch
        from webhooks.receivers import on_balance_fell_below_threshold, on_recipients_status_changed

        recipients_status_changed_batch.connect(
            on_recipients_status_changed, dispatch_uid="webhooks.recipients_status_changed_batch"
        )
        balance_fell_below_threshold.connect(
            on_balance_fell_below_threshold, dispatch_uid="webhooks.balance_fell_below_threshold"
        )
