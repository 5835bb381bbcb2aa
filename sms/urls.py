from django.urls import include, path

from sms import apis

urlpatterns = [
    path("send/", apis.SendApi.as_view(), name="sms-send"),
    path("status/<str:message_id>/", apis.StatusApi.as_view(), name="sms-status"),
    path("delivery-reports/", apis.DeliveryReportsApi.as_view(), name="sms-delivery-reports"),
    path("balance/", apis.BalanceApi.as_view(), name="sms-balance"),
    path("messages/", apis.MessagesApi.as_view(), name="sms-messages"),
    path("messages/<str:message_id>/", apis.MessageDetailApi.as_view(), name="sms-message"),
    path("sender-ids/", apis.SenderIdsApi.as_view(), name="sms-sender-ids"),
    path("sender-ids/request/", apis.SenderIdRequestApi.as_view(), name="sms-sender-id-request"),
    path("templates/", include("message_templates.urls")),
    path("<str:message_id>/cancel/", apis.CancelApi.as_view(), name="sms-cancel"),
]
