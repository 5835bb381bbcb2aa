from django.urls import path

from contacts import apis

# Fixed words first: "<contact_id>/" would otherwise claim "search/"… ("segments/" is routed
# before these, in mifumo/urls.py).
urlpatterns = [
    path("create/", apis.ContactCreateApi.as_view(), name="contacts-create"),
    path("search/", apis.ContactSearchApi.as_view(), name="contacts-search"),
    path("import/", apis.ContactImportApi.as_view(), name="contacts-import"),
    path("export/", apis.ContactExportApi.as_view(), name="contacts-export"),
    path("<str:contact_id>/", apis.ContactDetailApi.as_view(), name="contacts-detail"),
    path("<str:contact_id>/opt-out/", apis.ContactOptOutApi.as_view(), name="contacts-opt-out"),
    path("<str:contact_id>/opt-in/", apis.ContactOptInApi.as_view(), name="contacts-opt-in"),
]
