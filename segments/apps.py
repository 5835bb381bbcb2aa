from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "segments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from contacts.apis import provide_segment_filter
        from segments.selectors import segment_members_filter

        provide_segment_filter(segment_members_filter)
