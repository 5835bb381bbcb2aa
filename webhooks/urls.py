from django.urls import path

from webhooks import apis

# The fixed segments come before "<webhook_id>/", which would otherwise swallow them.
urlpatterns = [
    path("", apis.WebhookListApi.as_view(), name="webhooks"),
    path("deliveries/", apis.DeliveryListApi.as_view(), name="webhook-deliveries"),
    path(
        "deliveries/<str:delivery_id>/",
        apis.DeliveryDetailApi.as_view(),
        name="webhook-delivery",
    ),
    path(
        "deliveries/<str:delivery_id>/redeliver/",
        apis.DeliveryRedeliverApi.as_view(),
        name="webhook-delivery-redeliver",
    ),
    path("signing-secret/", apis.SigningSecretApi.as_view(), name="webhook-signing-secret"),
    path(
        "signing-secret/rotate/",
        apis.SigningSecretRotateApi.as_view(),
        name="webhook-signing-secret-rotate",
    ),
    path("<str:webhook_id>/", apis.WebhookDetailApi.as_view(), name="webhook"),
    path("<str:webhook_id>/test/", apis.WebhookTestApi.as_view(), name="webhook-test"),
    path(
        "<str:webhook_id>/rotate-secret/",
        apis.WebhookRotateSecretApi.as_view(),
        name="webhook-rotate-secret",
    ),
    path(
        "<str:webhook_id>/deliveries/",
        apis.WebhookDeliveriesApi.as_view(),
        name="webhook-endpoint-deliveries",
    ),
    path(
        "<str:webhook_id>/deliveries/<str:delivery_id>/",
        apis.WebhookDeliveryApi.as_view(),
        name="webhook-endpoint-delivery",
    ),
    path(
        "<str:webhook_id>/deliveries/<str:delivery_id>/redeliver/",
        apis.WebhookRedeliverApi.as_view(),
        name="webhook-endpoint-redeliver",
    ),
]
