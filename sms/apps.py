from django.apps import AppConfig


class SmsConfig(AppConfig):
    name = "sms"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from mifumo.metrics import collect_at_scrape
        from sms import admin_routes, checks, metrics
        from sms.signals import recipients_status_changed_batch

        checks.register_checks()
        admin_routes.register()
        recipients_status_changed_batch.connect(
            metrics.on_status_changed, dispatch_uid="sms.metrics.status"
        )
        collect_at_scrape("sms.recipients", metrics.RecipientsCollector())
