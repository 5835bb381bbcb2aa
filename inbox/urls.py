from django.urls import path

from inbox import apis

urlpatterns = [
    path("", apis.InboundListApi.as_view(), name="sms-inbound"),
    path("simulate/", apis.InboundSimulateApi.as_view(), name="sms-inbound-simulate"),
    path("<str:inbound_id>/", apis.InboundDetailApi.as_view(), name="sms-inbound-detail"),
]
