from django.urls import path

from segments import apis

urlpatterns = [
    path("", apis.SegmentListApi.as_view(), name="segments"),
    path("create/", apis.SegmentCreateApi.as_view(), name="segments-create"),
    path("<str:segment_id>/", apis.SegmentDetailApi.as_view(), name="segments-detail"),
    path("<str:segment_id>/contacts/", apis.SegmentContactsApi.as_view(), name="segments-contacts"),
]
