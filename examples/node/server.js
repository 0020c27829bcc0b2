// An example upstream app behind the caddy-irma gateway, in Node.js: it trusts a request only if
// the gateway's identity token (a JWT in the X-Irma-Identity header) verifies against the
// gateway's published keys (its JWK set) and was minted for the policy of the request's route,
// and then shows who the gateway says the visitor is.
//
//   npm install && node server.js [--listen 127.0.0.1:9090] [--jwks-url URL] [--issuer URL]
//                                 [--audience NAME] [--header NAME] [--policy PREFIX=POLICY ...]
//
// Nothing but node:http and the jose package.
import { webcrypto } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createRemoteJWKSet, jwtVerify, errors } from 'jose';

// jose uses the global Web Crypto API, which Node.js has had since 19; on Node.js 18 (Debian 12's)
// it is node:crypto's webcrypto, the same object, not yet global.
globalThis.crypto ??= webcrypto;

const { values: opts } = parseArgs({
  options: {
    listen: { type: 'string', default: '127.0.0.1:9090' },
    'jwks-url': { type: 'string', default: 'http://localhost:8080/irma/jwks.json' },
    issuer: { type: 'string', default: 'http://localhost:8080' },
    audience: { type: 'string', default: 'caddy-irma' },
    header: { type: 'string', default: 'X-Irma-Identity' },
    // PREFIX=POLICY: paths under PREFIX take only tokens of POLICY; repeat it for each route.
    policy: { type: 'string', multiple: true },
  },
});

// canonicalPath says whether path is absolute, without ".", ".." or empty segments (a trailing
// slash aside).
function canonicalPath(path) {
  if (!path.startsWith('/')) return false;
  const segments = path.slice(1).split('/');
  return segments.every((s, i) => s !== '.' && s !== '..' && (s !== '' || i === segments.length - 1));
}

// The routes of the demo (Caddyfile.example) and the policies that the gateway requires on them,
// unless --policy says otherwise.
const DEFAULT_POLICIES = new Map([['/members/', 'members'], ['/adults/', 'adults'], ['/club/', 'club']]);
const policies = opts.policy ? new Map() : DEFAULT_POLICIES;
for (const value of opts.policy ?? []) {
  const at = value.indexOf('=');
  const [prefix, name] = [value.slice(0, at), value.slice(at + 1)];
  if (at < 0 || !prefix.startsWith('/') || !name || !canonicalPath(prefix) || policies.has(prefix)) {
    console.error(`upstream: --policy ${JSON.stringify(value)}: want PREFIX=POLICY, such as /adults/=adults, each prefix once`);
    process.exit(2);
  }
  policies.set(prefix, name);
}

// routePolicy returns [policy] for the longest prefix that path starts with, or [null, status,
// reason] for a path that is not canonical (400: a router that cleans paths would serve
// /members/../adults/ as /adults/) or that is under no prefix (403).
function routePolicy(path) {
  let decoded;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return [null, 400, 'path is not canonical: it is not valid percent-encoding'];
  }
  if (!canonicalPath(decoded)) return [null, 400, 'path is not canonical: no dot segments or empty segments'];
  let best = '';
  for (const prefix of policies.keys()) {
    if (decoded.startsWith(prefix) && prefix.length > best.length) best = prefix;
  }
  if (!best) return [null, 403, 'no policy is configured for this path'];
  return [policies.get(best)];
}

// The gateway's keys. jose fetches the JWK set on first use, keeps it for cacheMaxAge, and
// fetches it again when a token names an unknown kid, but at most once per cooldownDuration:
// that is how a key rotation reaches this app without letting made-up kids flood the gateway.
const gatewayKeys = createRemoteJWKSet(new URL(opts['jwks-url']), {
  timeoutDuration: 5_000,
  cacheMaxAge: 300_000, // the gateway serves the set with max-age=300
  cooldownDuration: 60_000,
});

// KeysUnavailable: the JWK set could not be fetched or read, so the token could not be checked
// at all (503, not 401).
class KeysUnavailable extends Error {}

// keys resolves the key of a token, telling "cannot get the keys" apart from "no such key".
async function keys(protectedHeader, token) {
  try {
    return await gatewayKeys(protectedHeader, token);
  } catch (err) {
    if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) {
      throw err;
    }
    throw new KeysUnavailable(err.message, { cause: err });
  }
}

// verify checks the token and returns its claims: the signature with the key that its kid names
// (jose matches the header's alg against the key's type, so the key decides the algorithm); only
// EdDSA, ES256 and RS256; iss and aud must be ours; exp, nbf and iat must be present and hold,
// with 5 seconds of leeway for clock skew.
async function verify(token) {
  const { payload } = await jwtVerify(token, keys, {
    issuer: opts.issuer,
    audience: opts.audience,
    algorithms: ['EdDSA', 'ES256', 'RS256'],
    requiredClaims: ['exp', 'nbf', 'iat'],
    clockTolerance: 5,
  });
  return payload;
}

// rejection says briefly why a token was refused: enough for a developer, nothing of the token.
function rejection(err) {
  if (err instanceof KeysUnavailable) {
    return [503, "cannot fetch the gateway's keys to check the identity token; try again shortly"];
  }
  switch (err.code) {
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return [401, 'identity token signed by an unknown key (or its alg does not match the key)'];
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return [401, 'identity token has a forbidden alg'];
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return [401, 'identity token has an invalid signature'];
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return [401, 'malformed identity token'];
    case 'ERR_JWT_EXPIRED':
      return [401, 'identity token has expired'];
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (err.reason === 'missing') return [401, `identity token lacks the ${err.claim} claim`];
      if (err.claim === 'iss') return [401, 'identity token is from another issuer'];
      if (err.claim === 'aud') return [401, 'identity token is for another audience'];
      if (err.claim === 'nbf') return [401, 'identity token is not valid yet'];
      if (err.claim === 'iat') return [401, 'identity token is issued in the future'];
  }
  return [401, 'invalid identity token'];
}

const escapeHTML = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const table = (head, rows) =>
  `<table><tr><th>${head}</th><th>Value</th></tr>\n` +
  rows.map(([k, v]) => `<tr><td><code>${escapeHTML(k)}</code></td><td>${escapeHTML(v)}</td></tr>\n`).join('') +
  '</table>';

function page(answer) {
  const attrs = Object.entries(answer.attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const legacy = Object.entries(answer.legacy_headers ?? {}).sort();
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example upstream</title></head><body>
<h1>Hello from the example upstream</h1>
<p>This page is served by a Node.js app behind the gateway, which checked the identity token of this request.</p>
<p>Path: <code>${escapeHTML(answer.path)}</code></p>
<p>Policy: <code>${escapeHTML(answer.policy)}</code><br>Subject: <code>${escapeHTML(answer.subject)}</code></p>
<h2>Attributes</h2>
${attrs.length ? table('Attribute', attrs) : '<p>The token discloses no attributes.</p>'}
${legacy.length ? '<h2>Plain X-Irma-Attr-* headers (not signed)</h2>\n' + table('Header', legacy) : ''}
<p><a href="/">Back to the tour</a></p>
</body></html>
`;
}

const headerName = opts.header.toLowerCase();

// refuse answers a request that has no valid token, with a short reason and nothing of the token.
function refuse(req, res, path, status, reason, detail) {
  console.log(`upstream: ${req.method} ${path}: ${status}: ${detail}`);
  const headers = { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };
  if (status === 503) headers['Retry-After'] = '5';
  res.writeHead(status, headers).end(reason + '\n');
}

const server = http.createServer(async (req, res) => {
  const path = req.url.split('?')[0];
  // The route decides which policy a token must have been minted for: called directly, the app
  // must not let a token of a weaker route (members) open a stronger one (adults).
  const [want, status, reason] = routePolicy(path);
  if (!want) {
    refuse(req, res, path, status, reason, reason);
    return;
  }
  // The gateway sets the header once, replacing whatever the client sent: two mean that
  // something in between added one.
  const tokens = req.headersDistinct[headerName] ?? [];
  if (tokens.length !== 1) {
    const reason = tokens.length === 0
      ? `no identity token in the ${opts.header} header: log in through the gateway`
      : `more than one ${opts.header} header`;
    refuse(req, res, path, 401, reason, reason);
    return;
  }
  let claims;
  try {
    claims = await verify(tokens[0].trim());
  } catch (err) {
    const [status, reason] = rejection(err);
    refuse(req, res, path, status, reason, `${err.code ?? err.name}: ${err.message}`);
    return;
  }
  if (claims.policy !== want) {
    const reason = `identity token is for the policy ${JSON.stringify(claims.policy ?? null)}, not ${JSON.stringify(want)} that this path requires`;
    refuse(req, res, path, 403, reason, reason);
    return;
  }

  const legacy = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('x-irma-attr-')) legacy[name] = value;
  }
  const answer = {
    policy: typeof claims.policy === 'string' ? claims.policy : '',
    subject: claims.sub ?? '',
    attributes: claims.attributes && typeof claims.attributes === 'object' ? claims.attributes : {},
    path,
  };
  if (Object.keys(legacy).length) answer.legacy_headers = legacy;

  const headers = { 'Cache-Control': 'no-store', Vary: 'Accept', 'X-Content-Type-Options': 'nosniff' };
  if (/(^|,)\s*application\/json\s*(;|,|$)/i.test(req.headers.accept ?? '')) {
    res.writeHead(200, { ...headers, 'Content-Type': 'application/json' }).end(JSON.stringify(answer) + '\n');
  } else {
    res.writeHead(200, { ...headers, 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': "default-src 'none'" })
      .end(page(answer));
  }
});

const at = opts.listen.lastIndexOf(':');
const [host, port] = [opts.listen.slice(0, at).replace(/^\[|\]$/g, ''), Number(opts.listen.slice(at + 1))];
server.listen(port, host, () => {
  // The address bound, so that port 0 (any free port, as the tests use) says which one.
  const { address, port: boundPort, family } = server.address();
  const bound = family === 'IPv6' ? `[${address}]:${boundPort}` : `${address}:${boundPort}`;
  const routes = [...policies].map(([prefix, name]) => `${prefix}=${name}`).sort().join(' ');
  console.log(`upstream: listening on http://${bound}, trusting tokens from ${opts.issuer} (keys at ${opts['jwks-url']}) for "${opts.audience}" in ${opts.header}, on the routes ${routes}`);
});
