"""Serializers shared by every app's API documentation."""

from __future__ import annotations

from rest_framework import serializers


class PagePaginationOut(serializers.Serializer):
    page = serializers.IntegerField()
    per_page = serializers.IntegerField()
    total = serializers.IntegerField()
    pages = serializers.IntegerField()


class OffsetPaginationOut(serializers.Serializer):
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    total = serializers.IntegerField()
