from django.conf import settings
from django.db import migrations


def create_default_rule(apps, schema_editor):
    PriceRule = apps.get_model("sms", "PriceRule")
    PriceRule.objects.get_or_create(
        country_code="255",
        prefix="",
        defaults={
            "price_per_segment": settings.MIFUMO_DEFAULT_PRICE_PER_SEGMENT,
            "currency": "TZS",
            "description": "Tanzania, all networks",
        },
    )


class Migration(migrations.Migration):
    dependencies = [("sms", "0001_initial")]
    operations = [migrations.RunPython(create_default_rule, migrations.RunPython.noop)]
