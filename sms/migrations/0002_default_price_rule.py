from decimal import Decimal

from django.db import migrations


def create_default_rule(apps, schema_editor):
    PriceRule = apps.get_model("sms", "PriceRule")
    PriceRule.objects.get_or_create(
        country_code="255",
        prefix="",
        defaults={
            "price_per_segment": Decimal("10.00"),
            "currency": "TZS",
            "description": "Tanzania, all networks",
        },
    )


class Migration(migrations.Migration):
    dependencies = [("sms", "0001_initial")]
    operations = [migrations.RunPython(create_default_rule, migrations.RunPython.noop)]
