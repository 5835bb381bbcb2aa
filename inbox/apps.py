from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Two-way messaging"

    def ready(self) -> None:
        from inbox.receivers import on_recipients_status_changed
        from sms.signals import recipients_status_changed_batch

        recipients_status_changed_batch.connect(
            on_recipients_status_changed, dispatch_uid="inbox.recipients_status_changed_batch"
        )
