"""IrmaGatewayMiddleware: trust a request only with the gateway's identity token."""

import logging
from dataclasses import dataclass, field

import jwt
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse

from .keys import GatewayKeys, KeysUnavailable, UnknownKey

logger = logging.getLogger("irma_gateway")

# The JWS algorithm that each type of key verifies: the key decides, never the token. The gateway
# signs with EdDSA (Ed25519) unless its login's algorithm says ES256 (P-256) or RS256 (RSA).
ALGORITHM_OF_KEY_TYPE = {"OKP": "EdDSA", "EC": "ES256", "RSA": "RS256"}
DEFAULTS = {
    "HEADER": "X-Irma-Identity",
    "AUDIENCE": "caddy-irma",
    "ALGORITHMS": ["EdDSA"],
    "LEEWAY": 5,
}
REQUIRED = ("JWKS_URL", "ISSUER", "POLICIES")


@dataclass(frozen=True)
class IrmaIdentity:
    """What the gateway asserts about the visitor, as request.irma."""

    attributes: dict  # attribute id -> disclosed value
    policy: str  # the gateway's policy that the login satisfied: that of the request's path
    subject: str  # "sub": a pseudonym of this login, new at every login: not a person's id
    claims: dict = field(repr=False)  # every claim of the token


class Refusal(Exception):
    """A request that gets no further than the middleware: status and a short reason."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def canonical_path(path):
    """Says whether path is absolute, without ".", ".." or empty segments (a trailing slash aside)."""
    if not path.startswith("/"):
        return False
    segments = path[1:].split("/")
    return all(s not in (".", "..") and (s or i == len(segments) - 1) for i, s in enumerate(segments))


def rejection(err):
    """Says briefly why PyJWT refused a token: enough for a developer, nothing of the token."""
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


class IrmaGatewayMiddleware:
    """Refuses every request that lacks a valid identity token of the gateway for its path.

    The policy of a path is that of the longest prefix of IRMA_GATEWAY["POLICIES"] it starts
    with; a path under none gets 403, and a path with dot segments or empty segments 400. Then
    the token must be in exactly one header; verify against the gateway's JWK set with an
    allowed algorithm that is its key's; have the configured iss and aud, and exp, nbf and iat
    that hold (give or take LEEWAY seconds); and name that policy. Otherwise 401 (403 for a
    valid token of another policy; 503 when the keys cannot be fetched). A request that passes
    gets request.irma, an IrmaIdentity.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        conf = dict(DEFAULTS, **getattr(settings, "IRMA_GATEWAY", {}))
        missing = [k for k in REQUIRED if not conf.get(k)]
        if missing:
            raise ImproperlyConfigured("IRMA_GATEWAY lacks " + ", ".join(missing))
        unknown = set(conf["ALGORITHMS"]) - set(ALGORITHM_OF_KEY_TYPE.values())
        if unknown or not conf["ALGORITHMS"]:
            raise ImproperlyConfigured("IRMA_GATEWAY ALGORITHMS: want some of EdDSA, ES256, RS256")
        for prefix in conf["POLICIES"]:
            if not canonical_path(prefix):
                raise ImproperlyConfigured("IRMA_GATEWAY POLICIES: %r is not a canonical path" % prefix)
        self.conf = conf
        self.keys = GatewayKeys(conf["JWKS_URL"])
        # WSGI puts a header into request.META as HTTP_ and its name in capitals, dashes as
        # underscores (servers drop names with underscores rather than confuse the two).
        self.meta_key = "HTTP_" + conf["HEADER"].upper().replace("-", "_")

    def __call__(self, request):
        request.irma = None
        try:
            request.irma = self.identify(request)
        except Refusal as refusal:
            logger.warning("%s %s: %d: %s", request.method, request.path, refusal.status, refusal.reason)
            response = HttpResponse(refusal.reason + "\n", status=refusal.status, content_type="text/plain; charset=utf-8")
            response["Cache-Control"] = "no-store"
            if refusal.status == 503:
                response["Retry-After"] = "5"
            return response
        return self.get_response(request)

    def identify(self, request):
        """The IrmaIdentity of the request; raises Refusal."""
        want = self.route_policy(request.path_info)
        claims = self.verify(self.token(request))
        policy = claims.get("policy")
        if policy != want:
            raise Refusal(403, "identity token is for the policy %s, not %s that this path requires" % (_quote(policy), _quote(want)))
        attributes = claims.get("attributes")
        if not isinstance(attributes, dict):
            raise Refusal(401, "identity token has no attributes object")
        return IrmaIdentity(attributes=attributes, policy=policy, subject=claims.get("sub", ""), claims=claims)

    def route_policy(self, path):
        """The policy of the longest POLICIES prefix of path (decoded, as Django routes it)."""
        if not canonical_path(path):
            raise Refusal(400, "path is not canonical: no dot segments or empty segments")
        prefixes = [p for p in self.conf["POLICIES"] if path.startswith(p)]
        if not prefixes:
            raise Refusal(403, "no policy is configured for this path")
        return self.conf["POLICIES"][max(prefixes, key=len)]

    def token(self, request):
        """The token of the identity header, which must be there exactly once."""
        value = request.META.get(self.meta_key)
        if not value:
            raise Refusal(401, "no identity token in the %s header: log in through the gateway" % self.conf["HEADER"])
        # The gateway sets the header once, replacing what the client sent. WSGI servers join
        # a header sent twice into one value with a comma, which no JWT contains: a comma means
        # that something between the gateway and the app added a header.
        if "," in value:
            raise Refusal(401, "more than one %s header (joined with a comma)" % self.conf["HEADER"])
        return value.strip()

    def verify(self, token):
        """The claims of token, verified; raises Refusal."""
        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            if alg not in self.conf["ALGORITHMS"]:
                raise jwt.InvalidAlgorithmError("alg %r is not allowed" % alg)
            key = self.keys.get(header.get("kid"))
            if ALGORITHM_OF_KEY_TYPE.get(key.key_type) != alg:
                raise jwt.InvalidAlgorithmError("alg %r is not that of the key" % alg)
            return jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                issuer=self.conf["ISSUER"],
                audience=self.conf["AUDIENCE"],
                leeway=self.conf["LEEWAY"],
                options={"require": ["exp", "nbf", "iat", "iss", "aud", "policy"]},
            )
        except KeysUnavailable as err:
            logger.error("cannot fetch the gateway's keys from %s: %s", self.conf["JWKS_URL"], err)
            raise Refusal(503, "cannot fetch the gateway's keys to check the identity token; try again shortly") from err
        except jwt.InvalidTokenError as err:
            logger.info("identity token refused: %s: %s", type(err).__name__, err)
            raise Refusal(401, rejection(err)) from err


def _quote(value):
    return '"%s"' % value if isinstance(value, str) else repr(value)
