from __future__ import annotations

import random

import pytest

from connections.redaction import LogRedactor, Redactor
from connections.selectors import secret_values

from .conftest import PRIVATE_KEY

TOKEN = "tok-7f3a9c1e5b2d8f40"


def _stream(redactor: LogRedactor, chunks: list[str]) -> tuple[list[str], str]:
    stored = [redactor.redact_stream(chunk) for chunk in chunks]
    return stored, "".join(stored) + redactor.flush()


def test_redacts_nested_values_keys_included():
    redactor = Redactor([TOKEN])
    value = {
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "list": [TOKEN, ("x", f"a{TOKEN}b"), 3, None, True],
        TOKEN: "as a key",
    }
    assert redactor.redact(value) == {
        "headers": {"Authorization": "Bearer ***"},
        "list": ["***", ("x", "a***b"), 3, None, True],
        "***": "as a key",
    }


def test_every_occurrence_of_every_secret_is_replaced():
    redactor = Redactor(["alpha-secret", "beta-secret"])
    text = "alpha-secret beta-secret alpha-secret"
    assert redactor.redact(text) == "*** *** ***"


def test_the_longest_secret_wins_where_secrets_overlap():
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.redact("xx abcdefgh yy abcd") == "xx *** yy ***"


def test_without_secrets_values_pass_through():
    value = {"a": ["b"]}
    assert Redactor([]).redact(value) is value
    assert Redactor(["", None]).redact("text") == "text"  # type: ignore[list-item]
    stream = LogRedactor([])
    assert stream.redact_stream("abc") == "abc"
    assert stream.flush() == ""


@pytest.mark.parametrize("cut", range(1, len(TOKEN)))
def test_a_secret_split_across_two_chunks_never_reaches_storage(cut):
    redactor = LogRedactor([TOKEN])
    text = f"token is {TOKEN} ok\n"
    split = text.index(TOKEN) + cut
    stored, whole = _stream(redactor, [text[:split], text[split:]])
    assert stored[0] == "token is "  # the possible start of the secret is held back
    assert stored[1] == "*** ok\n"
    assert whole == "token is *** ok\n"


def test_a_secret_split_across_three_chunks_never_reaches_storage():
    redactor = LogRedactor([TOKEN])
    stored, whole = _stream(redactor, ["login with tok-7f", "3a9c1e", "5b2d8f40 done"])
    assert stored == ["login with ", "", "*** done"]
    assert whole == "login with *** done"
    assert not any(TOKEN[:5] in chunk for chunk in stored)


def test_a_partial_match_is_released_as_soon_as_it_cannot_be_a_secret():
    redactor = LogRedactor([TOKEN])
    assert redactor.redact_stream("echo tok-7") == "echo "
    assert redactor.pending == len("tok-7")
    assert redactor.redact_stream("x") == "tok-7x"
    assert redactor.pending == 0


def test_the_held_tail_is_shorter_than_the_longest_secret():
    redactor = LogRedactor(["short-one", TOKEN])
    for chunk in ["a" * 50, TOKEN[:-1]]:
        redactor.redact_stream(chunk)
        assert redactor.pending <= len(TOKEN) - 1


def test_flush_releases_and_redacts_the_tail():
    redactor = LogRedactor(["abcd", "abcdefgh"])
    assert redactor.redact_stream("x abcdef") == "x "  # could still become abcdefgh
    assert redactor.flush() == "***ef"  # it did not: the shorter secret is redacted
    assert redactor.flush() == ""


def test_a_secret_added_later_is_redacted_from_then_on():
    redactor = LogRedactor([])
    redactor.add(["late-secret"])
    assert _stream(redactor, ["a late-se", "cret b"])[1] == "a *** b"


def test_multi_line_secrets_are_redacted_whole_and_line_by_line():
    redactor = Redactor(secret_values({"private_key": PRIVATE_KEY, "passphrase": "pass-phrase"}))
    lines = PRIVATE_KEY.splitlines()
    assert redactor.redact(f"key:\n{PRIVATE_KEY}") == "key:\n***"
    # A program printing one line of it, or the key with other line endings.
    assert redactor.redact(f"debug: {lines[2]}") == "debug: ***"
    crlf = redactor.redact("\r\n".join(lines))
    for line in lines:
        assert line not in crlf
    indented = redactor.redact("\n".join("    " + line for line in lines))
    for line in lines[1:-1]:
        assert line not in indented


def test_multi_line_secret_split_across_chunks():
    redactor = LogRedactor(secret_values({"private_key": PRIVATE_KEY}))
    text = f"$ cat key\r\n{PRIVATE_KEY.replace(chr(10), chr(13) + chr(10))}$ exit\r\n"
    chunks = [text[i : i + 7] for i in range(0, len(text), 7)]
    stored, whole = _stream(redactor, chunks)
    for line in PRIVATE_KEY.splitlines()[1:-1]:
        assert line not in whole
    assert whole.startswith("$ cat key\r\n") and whole.endswith("$ exit\r\n")


def test_streaming_agrees_with_whole_text_redaction_on_random_input():
    rng = random.Random(1234)
    alphabet = "abcx-"
    for _ in range(300):
        secrets = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(4, 9)))
            for _ in range(rng.randint(1, 4))
        ]
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        text += rng.choice(secrets) + text[:10]
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(4, len(text) + 1)))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        stream = LogRedactor(secrets)
        streamed = "".join(stream.redact_stream(c) for c in chunks) + stream.flush()
        assert streamed == Redactor(secrets).redact(text), (secrets, chunks)
