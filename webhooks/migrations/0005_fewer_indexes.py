"""Events, deliveries and attempts write fewer index entries, with every lookup still
indexed:

- no pattern index (``LIKE 'x%'``) on any id: the events' and deliveries' own, the event's
  message, the delivery's event and endpoint, the attempt's delivery. Ids are looked up whole;
- no index on the account alone (events, deliveries) or the endpoint alone (deliveries):
  ``webhook_event_recent``, ``webhook_delivery_account`` and ``webhook_delivery_endpoint``
  start with that column;
- the plain indexes of the event's message, the delivery's event and the attempt's delivery
  stay, renamed to the names ``Meta`` declares: nothing is rebuilt.

A delivery's row takes a new entry in each of its indexes with every attempt's outcome: ten
indexes before, five now."""

import django.db.models.deletion
from django.db import migrations, models

from mifumo.migration_ops import RetireFieldIndexes


class Migration(migrations.Migration):
    dependencies = [
        ("integration", "0008_ledger_created_by_partial_index"),
        ("sms", "0010_submit_attempt_message_index"),
        ("webhooks", "0004_inbound_events"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                RetireFieldIndexes("event", "id", plain=False),
                RetireFieldIndexes("event", "account"),
                RetireFieldIndexes("event", "message", keep_as="webhook_event_message"),
                RetireFieldIndexes("delivery", "id", plain=False),
                RetireFieldIndexes("delivery", "account"),
                RetireFieldIndexes("delivery", "endpoint"),
                RetireFieldIndexes("delivery", "event", keep_as="webhook_delivery_event"),
                RetireFieldIndexes(
                    "deliveryattempt", "delivery", keep_as="webhook_attempt_delivery"
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="integration.account",
                    ),
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="endpoint",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="webhooks.endpoint",
                    ),
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="event",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="webhooks.event",
                    ),
                ),
                migrations.AlterField(
                    model_name="deliveryattempt",
                    name="delivery",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attempt_log",
                        to="webhooks.delivery",
                    ),
                ),
                migrations.AlterField(
                    model_name="event",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="integration.account",
                    ),
                ),
                migrations.AlterField(
                    model_name="event",
                    name="message",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="sms.message",
                    ),
                ),
                migrations.AddIndex(
                    model_name="delivery",
                    index=models.Index(fields=["event"], name="webhook_delivery_event"),
                ),
                migrations.AddIndex(
                    model_name="deliveryattempt",
                    index=models.Index(fields=["delivery"], name="webhook_attempt_delivery"),
                ),
                migrations.AddIndex(
                    model_name="event",
                    index=models.Index(fields=["message"], name="webhook_event_message"),
                ),
            ],
        ),
    ]
