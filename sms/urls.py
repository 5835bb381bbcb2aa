from django.urls import path

from sms import apis

urlpatterns = [
    path("balance/", apis.BalanceApi.as_view(), name="sms-balance"),
]
