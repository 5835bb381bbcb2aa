from django.apps import AppConfig


class SmsConfig(AppConfig):
    name = "sms"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The tasks are queued by name; importing them registers them with the Celery app,
        # which runs them in place when it is set to (CELERY_TASK_ALWAYS_EAGER).
        from sms import admin_routes, checks, tasks  # noqa: F401

        checks.register_checks()
        admin_routes.register()
