from django.apps import AppConfig


class SmsConfig(AppConfig):
    name = "sms"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sms import admin_routes, checks

        checks.register_checks()
        admin_routes.register()
