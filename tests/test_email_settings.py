"""EMAIL_URL: one variable for Django's EMAIL_* settings."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import email_url_settings


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://mailer:p%40ss@mail.example.com:2525", {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com", "EMAIL_PORT": 2525, "EMAIL_HOST_USER": "mailer",
        "EMAIL_HOST_PASSWORD": "p@ss", "EMAIL_USE_TLS": False, "EMAIL_USE_SSL": False}),
    ("smtp://mail.example.com?tls=1", {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com", "EMAIL_PORT": 587, "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "", "EMAIL_USE_TLS": True, "EMAIL_USE_SSL": False}),
    ("smtps://u:p@mail.example.com", {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com", "EMAIL_PORT": 465, "EMAIL_HOST_USER": "u",
        "EMAIL_HOST_PASSWORD": "p", "EMAIL_USE_TLS": False, "EMAIL_USE_SSL": True}),
    ("consolemail://", {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}),
    ("filemail:///var/mail/wf", {
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": "/var/mail/wf"}),
])
def test_email_url_sets_djangos_email_settings(url, expected):
    assert email_url_settings(url) == expected


@pytest.mark.parametrize("url", ["pigeon://coop", "smtp://host:notaport"])
def test_a_bad_email_url_is_refused_at_startup(url):
    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL"):
        email_url_settings(url)
