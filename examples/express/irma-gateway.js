// Express middleware for apps behind the caddy-irma gateway: it lets a request through only with
// the gateway's identity token (a JWT in the X-Irma-Identity header), verified against the
// gateway's published keys (its JWK set) and minted for the policy of the route, and puts what the
// gateway asserts in req.irma.
//
//   import { irmaGateway } from './irma-gateway.js';
//   const irma = irmaGateway({ jwksUrl, issuer, audience });
//   app.use('/members/', irma.requirePolicy('members'), membersRouter);
//
// Needs Express 5 (or 4) and jose 6.
import { webcrypto } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, errors } from 'jose';

// jose uses the global Web Crypto API, global from Node.js 19 on; on Node.js 18 it is node:crypto's.
globalThis.crypto ??= webcrypto;

// The algorithms the gateway can sign with: EdDSA (Ed25519) unless its login's algorithm says
// ES256 (P-256) or RS256 (RSA).
const KNOWN_ALGORITHMS = ['EdDSA', 'ES256', 'RS256'];

// KeysUnavailable: the JWK set could not be fetched or read, so no token can be checked (503).
class KeysUnavailable extends Error {}

// Refusal: a request that gets no further than the middleware, with its status and a short reason.
class Refusal extends Error {
  constructor(status, reason, cause) {
    super(reason, { cause });
    this.status = status;
  }
}

// canonicalPath says whether path is absolute, without ".", ".." or empty segments (a trailing
// slash aside).
function canonicalPath(path) {
  if (!path.startsWith('/')) return false;
  const segments = path.slice(1).split('/');
  return segments.every((s, i) => s !== '.' && s !== '..' && (s !== '' || i === segments.length - 1));
}

// rejection says briefly why jose refused a token: enough for a developer, nothing of the token.
function rejection(err) {
  switch (err.code) {
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return 'identity token signed by an unknown key (or its alg does not match the key)';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'identity token has a forbidden alg';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'identity token has an invalid signature';
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'malformed identity token';
    case 'ERR_JWT_EXPIRED':
      return 'identity token has expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (err.reason === 'missing') return `identity token lacks the ${err.claim} claim`;
      if (err.claim === 'iss') return 'identity token is from another issuer';
      if (err.claim === 'aud') return 'identity token is for another audience';
      if (err.claim === 'nbf') return 'identity token is not valid yet';
      if (err.claim === 'iat') return 'identity token is issued in the future';
  }
  return 'invalid identity token';
}

// irmaGateway returns the verifier of one gateway's tokens; make one at start-up and share it:
// its cache of the gateway's keys is what keeps the gateway from being asked on every request.
//
// options: jwksUrl (required: https unless the gateway is on this machine), issuer (required: the
// gateway's `issuer`, its site's URL), audience (the route's `audience`; default caddy-irma),
// header (default X-Irma-Identity), algorithms (default ['EdDSA']), clockTolerance (seconds of
// clock skew on exp, nbf and iat; default 5).
export function irmaGateway(options) {
  const { jwksUrl, issuer, audience = 'caddy-irma', header = 'X-Irma-Identity', algorithms = ['EdDSA'], clockTolerance = 5 } = options;
  if (!jwksUrl || !issuer) throw new TypeError('irmaGateway: jwksUrl and issuer are required');
  if (!algorithms.length || algorithms.some((a) => !KNOWN_ALGORITHMS.includes(a))) {
    throw new TypeError(`irmaGateway: algorithms: want some of ${KNOWN_ALGORITHMS.join(', ')}`);
  }
  const headerName = header.toLowerCase();
  // jose fetches the JWK set on first use (timeoutDuration), keeps it for cacheMaxAge (the gateway
  // says max-age=300), and fetches it again when a token names an unknown kid, at most once per
  // cooldownDuration: a key rotation reaches the app, made-up kids do not flood the gateway.
  const jwks = createRemoteJWKSet(new URL(jwksUrl), { timeoutDuration: 5_000, cacheMaxAge: 300_000, cooldownDuration: 60_000 });
  async function keys(protectedHeader, token) {
    try {
      return await jwks(protectedHeader, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
      throw new KeysUnavailable(err.message, { cause: err });
    }
  }

  // verify returns the claims of token. jose picks the key by kid and checks that its type fits
  // the alg, so the key decides the algorithm; alg must be one of algorithms.
  async function verify(token) {
    const { payload } = await jwtVerify(token, keys, {
      issuer, audience, algorithms, clockTolerance, requiredClaims: ['exp', 'nbf', 'iat', 'policy'],
    });
    return payload;
  }

  // tokenOf returns the token of the identity header, which must be there exactly once. Node.js
  // joins a header that comes twice into one value with ", ", which no JWT contains.
  function tokenOf(req) {
    const values = req.headersDistinct[headerName] ?? [];
    if (values.length === 0 || !values[0]) throw new Refusal(401, `no identity token in the ${header} header: log in through the gateway`);
    if (values.length > 1 || values[0].includes(',')) throw new Refusal(401, `more than one ${header} header`);
    return values[0].trim();
  }

  // requirePolicy is the middleware for the routes that the gateway protects with policy: mount
  // it before their handlers. It refuses (never calls next) without a valid token for policy.
  function requirePolicy(policy) {
    if (typeof policy !== 'string' || !policy) throw new TypeError('requirePolicy: a policy name is required');
    return async function irmaRequirePolicy(req, res, next) {
      req.irma = null;
      try {
        // The path as it came (not cut at the mount point), decoded: a router or file server that
        // cleans /members/../adults/ into /adults/ would serve another route than the one checked.
        let path;
        try {
          path = decodeURIComponent(req.originalUrl.split('?', 1)[0]);
        } catch {
          throw new Refusal(400, 'path is not canonical: it is not valid percent-encoding');
        }
        if (!canonicalPath(path)) throw new Refusal(400, 'path is not canonical: no dot segments or empty segments');
        let claims;
        try {
          claims = await verify(tokenOf(req));
        } catch (err) {
          if (err instanceof Refusal) throw err;
          if (err instanceof KeysUnavailable) throw new Refusal(503, "cannot fetch the gateway's keys to check the identity token; try again shortly", err);
          throw new Refusal(401, rejection(err), err);
        }
        if (claims.policy !== policy) {
          throw new Refusal(403, `identity token is for the policy ${JSON.stringify(claims.policy)}, not ${JSON.stringify(policy)} that this path requires`);
        }
        if (typeof claims.attributes !== 'object' || claims.attributes === null) throw new Refusal(401, 'identity token has no attributes object');
        req.irma = { attributes: claims.attributes, policy: claims.policy, subject: claims.sub ?? '', claims };
      } catch (refusal) {
        if (!(refusal instanceof Refusal)) return next(refusal);
        const { status, message: reason, cause } = refusal;
        // The log has why, never the token.
        console.warn(`irma: ${req.method} ${req.originalUrl.split('?', 1)[0]}: ${status}: ${reason}${cause ? ` (${cause.code ?? cause.name}: ${cause.message})` : ''}`);
        res.set('Cache-Control', 'no-store');
        if (status === 503) res.set('Retry-After', '5');
        return res.status(status).type('text/plain').send(reason + '\n');
      }
      return next();
    };
  }

  return { requirePolicy, verify };
}
