from django.urls import path

from message_templates import apis

urlpatterns = [
    path("", apis.TemplateListApi.as_view(), name="templates"),
    path("create/", apis.TemplateCreateApi.as_view(), name="templates-create"),
    path("<str:template_id>/", apis.TemplateDetailApi.as_view(), name="templates-detail"),
]
