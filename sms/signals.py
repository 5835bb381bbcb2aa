"""Signals the SMS app sends; receivers run inside the sender's transaction."""

from django.dispatch import Signal

# Recipients of one message moved together to one status (sent, delivered or failed).
# Sent inside the transaction that changed them, so an outbox row written by a receiver
# commits or rolls back with the change.
# kwargs: message_id: str, account_id: int, status: str, recipient_ids: list[int]
recipients_status_changed = Signal()
