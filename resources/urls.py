from django.urls import path

from resources import views

app_name = "resources"

urlpatterns = [
    path("download/<str:signed>/", views.download, name="download"),
]
