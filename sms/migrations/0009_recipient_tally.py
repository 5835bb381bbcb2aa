"""Each account's number of recipient rows, kept by triggers on the recipients' table
(``sms.models.RecipientTally``).

After each statement that inserts recipients, its rows are added to the tally of their
account, in the row of the writing connection's shard; after each that deletes some, they
are taken off one row of their account's (a cascade from the account itself may have removed
those already: then there is nothing to take them off). A TRUNCATE of the recipients empties
the tallies. The existing rows are counted once, after the triggers exist: creating a trigger
locks the table against writes to the end of this migration's transaction, so no row is
counted twice or missed (sends wait for the count, one scan of the table)."""

import django.db.models.deletion
from django.db import migrations, models

TRIGGERS = """
CREATE FUNCTION sms_recipient_tally_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sms_recipienttally (account_id, shard, total)
    SELECT account_id, pg_backend_pid() % 8, count(*) FROM added
    GROUP BY account_id ORDER BY account_id
    ON CONFLICT (account_id, shard)
    DO UPDATE SET total = sms_recipienttally.total + excluded.total;
    RETURN NULL;
END
$$;

CREATE FUNCTION sms_recipient_tally_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sms_recipienttally t SET total = t.total - gone.n
    FROM (SELECT account_id, count(*) AS n FROM removed GROUP BY account_id) gone
    WHERE t.id = (
        SELECT min(id) FROM sms_recipienttally WHERE account_id = gone.account_id
    );
    RETURN NULL;
END
$$;

CREATE FUNCTION sms_recipient_tally_cleared() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sms_recipienttally;
    RETURN NULL;
END
$$;

CREATE TRIGGER sms_recipient_tally_added AFTER INSERT ON sms_recipient
REFERENCING NEW TABLE AS added FOR EACH STATEMENT
EXECUTE FUNCTION sms_recipient_tally_added();

CREATE TRIGGER sms_recipient_tally_removed AFTER DELETE ON sms_recipient
REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
EXECUTE FUNCTION sms_recipient_tally_removed();

CREATE TRIGGER sms_recipient_tally_cleared AFTER TRUNCATE ON sms_recipient
FOR EACH STATEMENT EXECUTE FUNCTION sms_recipient_tally_cleared();

INSERT INTO sms_recipienttally (account_id, shard, total)
SELECT account_id, 0, count(*) FROM sms_recipient GROUP BY account_id;
"""

NO_TRIGGERS = """
DROP TRIGGER sms_recipient_tally_added ON sms_recipient;
DROP TRIGGER sms_recipient_tally_removed ON sms_recipient;
DROP TRIGGER sms_recipient_tally_cleared ON sms_recipient;
DROP FUNCTION sms_recipient_tally_added();
DROP FUNCTION sms_recipient_tally_removed();
DROP FUNCTION sms_recipient_tally_cleared();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("integration", "0006_invitations_and_balance_alerts"),
        ("sms", "0008_recipient_not_before_queued_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="RecipientTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("shard", models.SmallIntegerField()),
                ("total", models.BigIntegerField()),
                (
                    "account",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="integration.account",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("account", "shard"), name="recipient_tally_shard"
                    )
                ],
            },
        ),
        migrations.RunSQL(TRIGGERS, NO_TRIGGERS),
    ]
