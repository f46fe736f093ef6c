"""A small, real OpenID Connect provider for the sign-in tests: an HTTP server on a free
loopback port serving discovery, JWKS, the authorization endpoint and the token endpoint, with
ID tokens signed RS256 by joserfc (authlib's JOSE library) and PKCE checked with authlib's
RFC 7636 code.

It signs in `provider.user` (a dict of claims) without a login form: the authorization endpoint
answers at once with a redirect carrying a one-time code, as a provider does for a user who is
already signed in there. `provider.tamper` makes the next ID token wrong in one way (audience,
signature, expired, nonce) so the tests can see the client refuse it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import RSAKey


class Provider:
    def __init__(self, *, client_id: str = "workflows", client_secret: str = "s3cret") -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.key = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
        # Same kid, another key: a token it signs has a signature the JWKS does not verify.
        self.rogue_key = RSAKey.generate_key(2048, parameters={"kid": "key-1"})
        self.user: dict[str, Any] = {"sub": "u-1", "email": "ada@example.com",
                                     "preferred_username": "ada", "groups": []}
        self.tamper: str | None = None
        self.codes: dict[str, dict[str, Any]] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.issued_tokens: list[str] = []
        self.token_errors: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    return self._json(200, provider.discovery())
                if url.path == "/jwks":
                    return self._json(200, {"keys": [provider.key.as_dict(private=False)]})
                if url.path == "/authorize":
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    return self._redirect(provider.authorize(query))
                return self._json(404, {"error": "not_found"})

            def do_POST(self):  # noqa: N802
                if urlsplit(self.path).path != "/token":
                    return self._json(404, {"error": "not_found"})
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = provider.token(form)
                return self._json(status, body)

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }

    def authorize(self, query: dict[str, str]) -> str:
        """Check the request, remember what the code is bound to, redirect back with it."""
        self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            error = "unauthorized_client"
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            error = "invalid_request"
        elif "openid" not in query.get("scope", "").split():
            error = "invalid_scope"
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = {"redirect_uri": redirect_uri, "nonce": query.get("nonce"),
                                "challenge": query["code_challenge"], "claims": dict(self.user)}
            return f"{redirect_uri}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        return f"{redirect_uri}?{urlencode({'error': error, 'state': query.get('state', '')})}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The code exchange: client secret, one-time code, same redirect_uri, PKCE verifier."""
        grant = self.codes.pop(form.get("code", ""), None)
        if form.get("client_id") != self.client_id \
                or form.get("client_secret") != self.client_secret:
            self.token_errors.append("invalid_client")
            return 401, {"error": "invalid_client"}
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"] \
                or form.get("grant_type") != "authorization_code":
            self.token_errors.append("invalid_grant")
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        if not verifier or create_s256_code_challenge(verifier) != grant["challenge"]:
            self.token_errors.append("invalid_grant: PKCE")
            return 400, {"error": "invalid_grant", "error_description": "PKCE check failed"}
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.client_id, "iat": now, "exp": now + 300,
                  "nonce": grant["nonce"], **grant["claims"]}
        key = self.key
        if self.tamper == "audience":
            claims["aud"] = "someone-else"
        elif self.tamper == "expired":
            claims.update(iat=now - 7200, exp=now - 3600)
        elif self.tamper == "nonce":
            claims["nonce"] = "not-the-nonce-of-this-sign-in"
        elif self.tamper == "signature":
            key = self.rogue_key
        id_token = jwt.encode({"alg": "RS256", "kid": "key-1"}, claims, key)
        self.issued_tokens.append(id_token)
        return 200, {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                     "expires_in": 300, "id_token": id_token}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
