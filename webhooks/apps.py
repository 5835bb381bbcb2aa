from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integration.signals import balance_fell_below_threshold
        from sms.signals import recipients_status_changed_batch
        from webhooks.receivers import on_balance_fell_below_threshold, on_recipients_status_changed

        recipients_status_changed_batch.connect(
            on_recipients_status_changed, dispatch_uid="webhooks.recipients_status_changed_batch"
        )
        balance_fell_below_threshold.connect(
            on_balance_fell_below_threshold, dispatch_uid="webhooks.balance_fell_below_threshold"
        )
