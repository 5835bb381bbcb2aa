from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from integration.auth import ApiPrincipal
from integration.selectors import account_balance
from mifumo.api.docs import envelope_responses
from mifumo.api.fields import iso, money
from mifumo.api.responses import ok
from mifumo.api.views import ApiView
from sms import serializers as s


class BalanceApi(ApiView):
    @extend_schema(
        summary="Get account balance",
        tags=["SMS"],
        responses=envelope_responses(
            s.BalanceOut,
            example={"balance": 5000.0, "currency": "TZS", "last_updated": "2024-01-01T10:00:00Z"},
        ),
    )
    def get(self, request: Request) -> Response:
        assert isinstance(request.user, ApiPrincipal)
        account = account_balance(account_id=request.user.account.pk)
        return ok(
            {
                "balance": money(account.balance),
                "currency": account.currency,
                "last_updated": iso(account.balance_updated_at),
            },
            "Balance retrieved successfully",
        )
