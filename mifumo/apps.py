from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class MifumoConfig(AppConfig):
    name = "mifumo"
    verbose_name = "Mifumo"


class AdminConfig(admin_apps.AdminConfig):
    """Django admin with its sign-in throttled and two-factor aware (mifumo/admin_site.py).
    Named in INSTALLED_APPS; never picked for the ``mifumo`` entry."""

    default = False
    default_site = "mifumo.admin_site.AdminSite"
