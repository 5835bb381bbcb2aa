from django.apps import AppConfig


class MessageTemplatesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "message_templates"
    verbose_name = "Message templates"
