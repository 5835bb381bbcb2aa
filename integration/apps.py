from django.apps import AppConfig


class IntegrationConfig(AppConfig):
    name = "integration"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integration import versions
        from integration.signals import ledger_entry_recorded
        from mifumo.metrics import count_ledger_entry

        versions.connect()
        ledger_entry_recorded.connect(count_ledger_entry, dispatch_uid="integration.metrics.ledger")
