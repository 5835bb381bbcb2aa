"""The webhooks app: listens to the SMS and integration apps' signals (``webhooks.receivers``)
and registers its Celery tasks, which the rest of the app queues by name."""

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        import webhooks.tasks  # noqa: F401 - registers the tasks webhooks.outbox queues by name
        from integration.signals import balance_fell_below_threshold
        from sms.signals import recipients_status_changed_batch
        from webhooks import metrics
        from webhooks.receivers import on_balance_fell_below_threshold, on_recipients_status_changed
        from webhooks.signals import attempts_recorded

        recipients_status_changed_batch.connect(
            on_recipients_status_changed, dispatch_uid="webhooks.recipients_status_changed_batch"
        )
        balance_fell_below_threshold.connect(
            on_balance_fell_below_threshold, dispatch_uid="webhooks.balance_fell_below_threshold"
        )
        post_save.connect(
            metrics.on_attempt_saved,
            sender="webhooks.DeliveryAttempt",
            dispatch_uid="webhooks.metrics.attempt",
        )
        attempts_recorded.connect(metrics.on_attempts_recorded, dispatch_uid="webhooks.metrics")
