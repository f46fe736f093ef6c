"""The `verify:` presets, each pinned with its provider's own published test vector where one
exists, and every way a signature can be wrong."""

import hashlib
import hmac
import time

import pytest

from workflows.webhook_presets import PRESETS, TOLERANCE_SECONDS, WebhookSignatureInvalid

NOW = 1_700_000_000


def verify(name, secret, body, headers, now=NOW):
    return PRESETS[name].verify(secret=secret, body=body, headers=headers, now=now)


def test_github_published_vector():
    # docs.github.com "Validating webhook deliveries": secret "It's a Secret to Everybody",
    # payload "Hello, World!".
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verify("github", "It's a Secret to Everybody", b"Hello, World!",
                  {"x-hub-signature-256": header}) is None
    with pytest.raises(WebhookSignatureInvalid, match="does not match"):
        verify("github", "It's a Secret to Everybody", b"Hello, World?",
               {"x-hub-signature-256": header})


SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015."
    b"47445629121.803a0bc887a14d10d2c447fce8b6703c"
)


def test_slack_published_vector():
    # api.slack.com "Verifying requests from Slack": the slash command example.
    headers = {
        "x-slack-request-timestamp": "1531420618",
        "x-slack-signature":
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    assert verify("slack", "8f742231b10e8888abcd99yyyzzz85a5", SLACK_BODY, headers,
                  now=1531420618 + 10) == 1531420618
    with pytest.raises(WebhookSignatureInvalid, match="stale timestamp"):
        verify("slack", "8f742231b10e8888abcd99yyyzzz85a5", SLACK_BODY, headers, now=NOW)


def test_standard_webhooks_published_vector():
    # standard-webhooks TestWebhookSign (the reference libraries' test).
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    # The reference package checks the timestamp against the real clock: sign it anew now,
    # after proving the vector's signature is what this preset computes.
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    hook = Webhook(secret)
    assert hook.sign(headers["webhook-id"], datetime.fromtimestamp(1614265330, tz=UTC),
                     body) == headers["webhook-signature"]
    now = int(time.time())
    fresh = {**headers, "webhook-timestamp": str(now), "webhook-signature":
             "v1,bm90IGl0 " + hook.sign(headers["webhook-id"],
                                        datetime.fromtimestamp(now, tz=UTC), body)}
    assert verify("standard", secret, body, fresh, now=now) == now  # any one of several
    with pytest.raises(WebhookSignatureInvalid, match="stale timestamp"):
        verify("standard", secret, body, headers, now=now)
    with pytest.raises(WebhookSignatureInvalid, match="no v1 signature matches"):
        verify("standard", "whsec_" + "QUJD" * 8, body, fresh, now=now)


def _stripe(secret, body, ts):
    return hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


def test_stripe_several_v1_signatures_pass_when_any_matches():
    # Stripe publishes no fixed test vector (its libraries compute one with a test secret),
    # so this one is computed: HMAC-SHA256 of "t.BODY" keyed with the whole whsec_ secret.
    secret, body = "whsec_test_secret", b'{"id": "evt_1", "type": "invoice.paid"}'
    good = _stripe(secret, body, NOW)
    header = f"t={NOW},v1={'0' * 64},v1={good},v0=abc"
    assert verify("stripe", secret, body, {"stripe-signature": header}) == NOW
    with pytest.raises(WebhookSignatureInvalid, match="no v1 signature matches"):
        verify("stripe", "whsec_other", body, {"stripe-signature": header})


def test_gitlab_token_is_compared_to_the_secret():
    assert verify("gitlab", "gl-token-123456789", b"{}", {"x-gitlab-token": "gl-token-123456789"}
                  ) is None
    with pytest.raises(WebhookSignatureInvalid, match="does not match"):
        verify("gitlab", "gl-token-123456789", b"{}", {"x-gitlab-token": "gl-token-12345678"})


@pytest.mark.parametrize("name, headers, reason", [
    ("signature", {}, "missing X-Signature"),
    ("signature", {"x-signature": "garbage"}, "malformed"),
    ("signature", {"x-signature": f"t={NOW - TOLERANCE_SECONDS - 1},v1=00"}, "stale"),
    ("github", {}, "missing X-Hub-Signature-256"),
    ("github", {"x-hub-signature-256": "sha1=abc"}, "malformed"),
    ("github", {"x-hub-signature-256": "sha256=" + "0" * 64}, "does not match"),
    ("gitlab", {}, "missing X-Gitlab-Token"),
    ("stripe", {}, "missing Stripe-Signature"),
    ("stripe", {"stripe-signature": "v1=00"}, "malformed"),
    ("stripe", {"stripe-signature": "t=abc,v1=00"}, "malformed timestamp"),
    ("stripe", {"stripe-signature": f"t={NOW + 400},v1=00"}, "stale"),
    ("slack", {"x-slack-signature": "v0=00"}, "missing timestamp"),
    ("slack", {"x-slack-signature": "v1=00", "x-slack-request-timestamp": str(NOW)},
     "malformed"),
    ("standard", {"webhook-signature": "v1,AAAA", "webhook-timestamp": str(NOW)},
     "missing webhook-id"),
    ("standard", {"webhook-signature": "garbage", "webhook-id": "m",
                  "webhook-timestamp": str(NOW)}, "malformed"),
    ("standard", {"webhook-signature": "v1,AAAA", "webhook-id": "m",
                  "webhook-timestamp": str(NOW - 1000)}, "stale"),
])
def test_each_failed_check_is_named(name, headers, reason):
    with pytest.raises(WebhookSignatureInvalid, match=reason):
        verify(name, "whsec_QUJDREVGR0hJSktMTU5PUA==", b"{}", headers)


def test_event_names_and_delivery_ids_come_from_where_each_sender_puts_them():
    body = {"id": "evt_1", "type": "invoice.paid", "event_id": "Ev1", "event": {"type": "msg"}}
    headers = {"x-github-event": "push", "x-github-delivery": "gh-1", "x-gitlab-event":
               "Push Hook", "x-gitlab-event-uuid": "gl-1", "webhook-id": "msg_1",
               "idempotency-key": "k-1"}
    got = {name: (p.event(payload=body, headers=headers), p.delivery_id(payload=body,
                                                                         headers=headers))
           for name, p in PRESETS.items()}
    assert got == {"signature": ("", "k-1"), "github": ("push", "gh-1"),
                   "gitlab": ("Push Hook", "gl-1"), "stripe": ("invoice.paid", "evt_1"),
                   "slack": ("msg", "Ev1"), "standard": ("invoice.paid", "msg_1")}
    assert PRESETS["slack"].event(payload={"command": "/deploy"}, headers={}) == "/deploy"
    assert PRESETS["slack"].challenge(payload={"type": "url_verification", "challenge": "c"}) \
        == {"challenge": "c"}
    assert all(p.challenge(payload={"type": "url_verification", "challenge": "c"}) is None
               for name, p in PRESETS.items() if name != "slack")
