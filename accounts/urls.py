"""The OpenID Connect endpoints (404 while OIDC_ISSUER_URL is unset). The names are the ones
mozilla-django-oidc reverses."""

from django.urls import path

from accounts import views

urlpatterns = [
    path("authenticate/", views.OidcLoginView.as_view(), name="oidc_authentication_init"),
    path("callback/", views.OidcCallbackView.as_view(), name="oidc_authentication_callback"),
]
