from django.urls import path

from integration import apis

urlpatterns = [
    path("", apis.KeyListApi.as_view(), name="keys"),
    path("create/", apis.KeyCreateApi.as_view(), name="keys-create"),
    path("<int:key_id>/revoke/", apis.KeyRevokeApi.as_view(), name="keys-revoke"),
    path("<int:key_id>/rotate/", apis.KeyRotateApi.as_view(), name="keys-rotate"),
]
