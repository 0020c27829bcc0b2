"""The gateway's public keys, fetched from its JWK set and cached."""

import json
import threading
import time
import urllib.request

import jwt

LIFESPAN = 300  # seconds the JWK set is kept: the gateway serves it with max-age=300
REFETCH_INTERVAL = 60  # seconds: how often, at most, an unknown kid fetches the set again
FETCH_TIMEOUT = 5  # seconds a fetch may take


class KeysUnavailable(Exception):
    """The JWK set could not be fetched or read: no token can be checked (answer 503)."""


class UnknownKey(jwt.InvalidTokenError):
    """The token names a kid that the gateway does not publish."""


class GatewayKeys:
    """The gateway's public keys, by kid.

    The JWK set is fetched on first use and kept for LIFESPAN seconds. A token that names an
    unknown kid makes it fetch the set again, at most once per REFETCH_INTERVAL: that is how a
    key rotation reaches the app, without made-up kids turning into a fetch each. One fetch runs
    at a time; requests that need the keys meanwhile wait for it.

    It fetches with urllib and a timeout, and reads the set with jwt.PyJWKSet, because
    jwt.PyJWKClient takes no timeout before PyJWT 2.7 (Debian 12 has 2.6.0) and refetches the
    set on every unknown kid.
    """

    def __init__(self, url):
        self.url = url
        self._lock = threading.Lock()
        self._by_kid = None  # kid -> jwt.PyJWK, from the last good fetch
        self._fetched_at = 0.0  # time.monotonic() of that fetch

    def get(self, kid):
        """Returns the jwt.PyJWK that kid names; raises UnknownKey or KeysUnavailable."""
        if not isinstance(kid, str) or not kid:
            raise UnknownKey("the token has no kid")
        with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = self._by_kid is None or age >= LIFESPAN
            if stale or (kid not in self._by_kid and age >= REFETCH_INTERVAL):
                self._by_kid = self._fetch()
                self._fetched_at = time.monotonic()
            key = self._by_kid.get(kid)
        if key is None:
            raise UnknownKey("no key %r" % kid[:64])
        return key

    def _fetch(self):
        try:
            with urllib.request.urlopen(self.url, timeout=FETCH_TIMEOUT) as resp:
                data = json.load(resp)
            if not isinstance(data, dict):
                raise ValueError("the JWK set is not a JSON object")
            # PyJWKSet skips keys it cannot use, and raises PyJWKSetError when none is left.
            keys = jwt.PyJWKSet.from_dict(data).keys
        except (OSError, ValueError, jwt.PyJWKSetError) as err:
            # OSError: unreachable, an HTTP error status, a timeout. ValueError: not JSON.
            raise KeysUnavailable(str(err)) from err
        return {k.key_id: k for k in keys if k.key_id and k.public_key_use in ("sig", None)}
