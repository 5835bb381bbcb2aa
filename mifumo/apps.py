from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class MifumoConfig(AppConfig):
    name = "mifumo"
    verbose_name = "Mifumo"

    def ready(self) -> None:
        # Here rather than in mifumo.celery: the metrics module reads the Celery app's queues,
        # and every importer of the Celery app would otherwise load the prometheus client.
        # Celery workers set Django up before they send worker_init.
        from celery.signals import task_failure, worker_init

        from mifumo import metrics

        task_failure.connect(
            metrics.count_task_failure, weak=False, dispatch_uid="mifumo.task_failure_metric"
        )
        worker_init.connect(
            metrics.serve_worker_metrics, weak=False, dispatch_uid="mifumo.worker_metrics"
        )


class AdminConfig(admin_apps.AdminConfig):
    """Django admin with its sign-in throttled and two-factor aware (mifumo/admin_site.py).
    Named in INSTALLED_APPS; never picked for the ``mifumo`` entry."""

    default = False
    default_site = "mifumo.admin_site.AdminSite"
