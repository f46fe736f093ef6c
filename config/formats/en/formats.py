"""Date formats for the admin's own pages (changelists, read-only fields), so they read like
the workflows pages' `when` filter: "2026-11-30 14:05 CET", in the reader's time zone."""

DATETIME_FORMAT = "Y-m-d H:i T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i"
