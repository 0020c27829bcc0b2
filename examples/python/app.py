"""An example upstream app behind the caddy-irma gateway, in Python.

It trusts a request only if the gateway's identity token (a JWT in the X-Irma-Identity header)
verifies against the gateway's published keys (its JWK set) and was minted for the policy of the
request's route, and then shows who the gateway says the visitor is.

    pip install -r requirements.txt
    python3 app.py [--listen 127.0.0.1:9090] [--jwks-url URL] [--issuer URL]
                   [--audience NAME] [--header NAME] [--policy PREFIX=POLICY ...]

Nothing but the standard library and PyJWT (with its crypto extra).
"""

import argparse
import html
import json
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

# The algorithms the gateway signs with, and the one each key type verifies: the key decides
# the algorithm, never the token.
ALGORITHM_OF_KEY_TYPE = {"OKP": "EdDSA", "EC": "ES256", "RSA": "RS256"}
LEEWAY = 5  # seconds of clock skew tolerated on exp, nbf and iat
LIFESPAN = 300  # seconds the JWK set is kept, as the gateway's max-age says
REFETCH_INTERVAL = 60  # seconds: how often, at most, an unknown kid refetches the JWK set
FETCH_TIMEOUT = 5  # seconds a fetch of the JWK set may take
# The routes of the demo (Caddyfile.example) and the policies that the gateway requires on them.
DEFAULT_POLICIES = {"/members/": "members", "/adults/": "adults", "/club/": "club"}


class KeysUnavailable(Exception):
    """The JWK set could not be fetched or read: the token could not be checked at all."""


class UnknownKey(jwt.InvalidTokenError):
    """The token names a key that the gateway does not publish."""


class GatewayKeys:
    """The gateway's public keys, from its JWK set.

    The set is fetched on first use, with a FETCH_TIMEOUT, and kept for LIFESPAN seconds (the
    gateway serves it with max-age=300). When a token names an unknown kid, the set is fetched
    again if it is older than REFETCH_INTERVAL: that is how a key rotation reaches this app,
    without letting made-up kids turn into a fetch each. One fetch at a time; requests that
    need the keys meanwhile wait for it.

    It fetches with urllib and parses with jwt.PyJWKSet rather than using jwt.PyJWKClient, whose
    constructor takes no timeout before PyJWT 2.7 (Debian 12 has 2.6) and whose get_signing_key
    refetches on every unknown kid.
    """

    def __init__(self, url):
        self._url = url
        self._lock = threading.Lock()
        self._keys = None  # kid -> jwt.PyJWK, from the last good fetch
        self._fetched = float("-inf")  # time.monotonic() of that fetch

    def for_token(self, token):
        kid = jwt.get_unverified_header(token).get("kid")  # raises DecodeError on garbage
        if not isinstance(kid, str) or not kid:
            raise UnknownKey("the token has no kid")
        with self._lock:
            age = time.monotonic() - self._fetched
            if self._keys is None or age >= LIFESPAN or (kid not in self._keys and age >= REFETCH_INTERVAL):
                self._fetch()
            key = self._keys.get(kid)
        if key is None:
            raise UnknownKey(f"no key {kid[:64]!r}")
        return key

    def _fetch(self):
        try:
            with urllib.request.urlopen(self._url, timeout=FETCH_TIMEOUT) as resp:
                data = json.load(resp)
            if not isinstance(data, dict):
                raise ValueError("the JWK set is not a JSON object")
            # PyJWKSet skips keys it cannot use, and raises PyJWKSetError if none is left.
            keys = jwt.PyJWKSet.from_dict(data).keys
        except (OSError, ValueError, jwt.PyJWKSetError) as err:
            # OSError: unreachable, an HTTP error status, a timeout. ValueError: not JSON.
            raise KeysUnavailable(str(err)) from err
        self._keys = {k.key_id: k for k in keys if k.key_id and k.public_key_use in ("sig", None)}
        self._fetched = time.monotonic()


def verify(keys, token, issuer, audience):
    """Checks token and returns its claims.

    The signature with the key that its kid names, using that key's algorithm only (EdDSA,
    ES256 or RS256); iss and aud must be ours; exp, nbf and iat must be present and hold, give
    or take LEEWAY. Raises jwt.InvalidTokenError (or a subclass) for an invalid token, and
    KeysUnavailable when the keys cannot be had.
    """
    key = keys.for_token(token)
    algorithm = ALGORITHM_OF_KEY_TYPE.get(key.key_type)
    if algorithm is None:
        raise UnknownKey(f"key of type {key.key_type!r}")
    return jwt.decode(
        token,
        key.key,
        algorithms=[algorithm],
        audience=audience,
        issuer=issuer,
        leeway=LEEWAY,
        options={"require": ["exp", "nbf", "iat", "iss", "aud"]},
    )


def canonical_path(path):
    """Says whether path is absolute, without ".", ".." or empty segments (a trailing slash aside)."""
    if not path.startswith("/"):
        return False
    segments = path[1:].split("/")
    return all(s not in (".", "..") and (s or i == len(segments) - 1) for i, s in enumerate(segments))


def route_policy(policies, path):
    """The policy of the longest prefix in policies that path starts with.

    Returns (status, reason) instead for a path that is not canonical (400: a router that cleans
    paths would serve /members/../adults/ as /adults/) or that is under no prefix (403).
    """
    if not canonical_path(path):
        return None, (400, "path is not canonical: no dot segments or empty segments")
    prefixes = [p for p in policies if path.startswith(p)]
    if not prefixes:
        return None, (403, "no policy is configured for this path")
    return policies[max(prefixes, key=len)], None


def parse_policy(value):
    """Parses a --policy flag, PREFIX=POLICY."""
    prefix, sep, name = value.partition("=")
    if not sep or not prefix.startswith("/") or not name or not canonical_path(prefix):
        raise argparse.ArgumentTypeError(f"{value!r}: want PREFIX=POLICY, such as /adults/=adults")
    return prefix, name


def rejection(err):
    """Says briefly why a token was refused: enough for a developer, nothing of the token."""
    for cls, reason in [
        (UnknownKey, "identity token signed by an unknown key"),
        (jwt.InvalidAlgorithmError, "identity token alg is forbidden or does not match its key"),
        (jwt.InvalidSignatureError, "identity token has an invalid signature"),
        (jwt.ExpiredSignatureError, "identity token has expired"),
        (jwt.ImmatureSignatureError, "identity token is not valid yet"),
        (jwt.InvalidIssuerError, "identity token is from another issuer"),
        (jwt.InvalidAudienceError, "identity token is for another audience"),
        (jwt.MissingRequiredClaimError, "identity token lacks a required claim"),
        (jwt.DecodeError, "malformed identity token"),
    ]:
        if isinstance(err, cls):
            return reason
    return "invalid identity token"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example upstream</title></head><body>
<h1>Hello from the example upstream</h1>
<p>This page is served by a Python app behind the gateway, which checked the identity token of this request.</p>
<p>Path: <code>{path}</code></p>
<p>Policy: <code>{policy}</code><br>Subject: <code>{subject}</code></p>
<h2>Attributes</h2>
{attributes}
{legacy}
<p><a href="/">Back to the tour</a></p>
</body></html>
"""


def table(head, rows):
    e = html.escape
    return (
        f"<table><tr><th>{head}</th><th>Value</th></tr>\n"
        + "".join(f"<tr><td><code>{e(str(k))}</code></td><td>{e(str(v))}</td></tr>\n" for k, v in sorted(rows))
        + "</table>"
    )


def make_handler(keys, issuer, audience, header, policies):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?", 1)[0]
            # The route decides which policy a token must have been minted for: called directly,
            # the app must not let a token of a weaker route (members) open a stronger one
            # (adults). The policy is looked up on the decoded path, which must be canonical.
            want, refusal = route_policy(policies, urllib.parse.unquote(path))
            if refusal:
                return self.refuse(refusal[0], refusal[1], refusal[1])
            # The gateway sets the header once, replacing whatever the client sent: two mean
            # that something in between added one.
            tokens = self.headers.get_all(header) or []
            if len(tokens) != 1:
                reason = (
                    f"no identity token in the {header} header: log in through the gateway"
                    if not tokens
                    else f"more than one {header} header"
                )
                return self.refuse(401, reason, reason)
            try:
                claims = verify(keys, tokens[0].strip(), issuer, audience)
            except KeysUnavailable as err:
                return self.refuse(
                    503,
                    "cannot fetch the gateway's keys to check the identity token; try again shortly",
                    f"keys unavailable: {err}",
                )
            except jwt.InvalidTokenError as err:
                return self.refuse(401, rejection(err), f"{type(err).__name__}: {err}")
            if claims.get("policy") != want:
                reason = f"identity token is for the policy {json.dumps(claims.get('policy'))}, not {json.dumps(want)} that this path requires"
                return self.refuse(403, reason, reason)

            attributes = claims.get("attributes")
            answer = {
                "policy": claims.get("policy", ""),
                "subject": claims.get("sub", ""),
                "attributes": attributes if isinstance(attributes, dict) else {},
                "path": path,
            }
            legacy = {k: v for k, v in self.headers.items() if k.lower().startswith("x-irma-attr-")}
            if legacy:
                answer["legacy_headers"] = legacy

            if "application/json" in self.headers.get("Accept", ""):
                body, ctype = json.dumps(answer).encode(), "application/json"
            else:
                e = html.escape
                body = PAGE.format(
                    path=e(path),
                    policy=e(str(answer["policy"])),
                    subject=e(str(answer["subject"])),
                    attributes=table("Attribute", answer["attributes"].items())
                    if answer["attributes"]
                    else "<p>The token discloses no attributes.</p>",
                    legacy="<h2>Plain X-Irma-Attr-* headers (not signed)</h2>\n"
                    + table("Header", legacy.items())
                    if legacy
                    else "",
                ).encode()
                ctype = "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            # The answer is about one person: no shared cache may keep it.
            self.send_header("Cache-Control", "no-store")
            self.send_header("Vary", "Accept")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def refuse(self, status, reason, detail):
            """Answers a request that has no valid token; logs why, never the token."""
            self.log_message("%s %s: %d: %s", self.command, self.path.split("?", 1)[0], status, detail)
            body = (reason + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            if status == 503:
                self.send_header("Retry-After", "5")
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main():
    p = argparse.ArgumentParser(description="An example upstream app behind the caddy-irma gateway.")
    p.add_argument("--listen", default="127.0.0.1:9090", help="host:port to listen on")
    p.add_argument("--jwks-url", default="http://localhost:8080/irma/jwks.json", help="where the gateway publishes its keys")
    p.add_argument("--issuer", default="http://localhost:8080", help="the iss the tokens must have: the gateway's URL")
    p.add_argument("--audience", default="caddy-irma", help="the aud the tokens must have")
    p.add_argument("--header", default="X-Irma-Identity", help="the request header that holds the token")
    p.add_argument(
        "--policy",
        action="append",
        type=parse_policy,
        metavar="PREFIX=POLICY",
        help="paths under PREFIX take only tokens of POLICY (repeat it for each route; default: the demo's "
        "/members/=members, /adults/=adults and /club/=club)",
    )
    args = p.parse_args()
    policies = dict(args.policy) if args.policy else DEFAULT_POLICIES
    if args.policy and len(policies) != len(args.policy):
        p.error("a --policy prefix is given twice")

    host, _, port = args.listen.rpartition(":")
    handler = make_handler(GatewayKeys(args.jwks_url), args.issuer, args.audience, args.header, policies)
    server = ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
    # The address bound, so that port 0 (any free port, as the tests use) says which one.
    bound_host, bound_port = server.server_address[:2]
    print(
        f"upstream: listening on http://{bound_host}:{bound_port}, trusting tokens from {args.issuer} "
        f"(keys at {args.jwks_url}) for {args.audience!r} in {args.header}, on the routes "
        + " ".join(f"{k}={v}" for k, v in sorted(policies.items())),
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
