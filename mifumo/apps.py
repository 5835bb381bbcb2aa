from django.apps import AppConfig


class MifumoConfig(AppConfig):
    name = "mifumo"
    verbose_name = "Mifumo"
