from django.apps import AppConfig


class SmsConfig(AppConfig):
    name = "sms"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The tasks are queued by name; importing them registers them with the Celery app,
        # which runs them in place when it is set to (CELERY_TASK_ALWAYS_EAGER).
        from mifumo.metrics import collect_at_scrape
        from sms import admin_routes, checks, metrics, tasks  # noqa: F401
        from sms.signals import recipients_status_changed_batch

        checks.register_checks()
        admin_routes.register()
        recipients_status_changed_batch.connect(
            metrics.on_status_changed, dispatch_uid="sms.metrics.status"
        )
        collect_at_scrape("sms.recipients", metrics.RecipientsCollector())
