"""Signals the webhooks app sends for others to count or react to."""

from __future__ import annotations

from django.dispatch import Signal

# Attempt rows written in bulk (no post_save for each): sent inside the transaction that
# wrote them, with ``succeeded`` and ``failed`` counts.
attempts_recorded = Signal()
