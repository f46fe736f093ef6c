"""Pages outside the admin: the decision page of the approval email's links."""

from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("<int:approval_id>/decide/<str:token>/", views.decision_page, name="decide"),
]
