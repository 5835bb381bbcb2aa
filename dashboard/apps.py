from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dashboard.receivers import on_balance_fell_below_threshold
        from integration.signals import balance_fell_below_threshold

        balance_fell_below_threshold.connect(
            on_balance_fell_below_threshold, dispatch_uid="dashboard.balance_fell_below_threshold"
        )
