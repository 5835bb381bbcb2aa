from __future__ import annotations

from rest_framework import serializers


class BalanceOut(serializers.Serializer):
    balance = serializers.FloatField()
    currency = serializers.CharField()
    last_updated = serializers.DateTimeField()
