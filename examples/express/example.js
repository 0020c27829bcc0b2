// A small Express app behind the caddy-irma gateway, to try irma-gateway.js with (and test it).
//
//   npm install && node example.js [--listen 127.0.0.1:9090] [--jwks-url URL] [--issuer URL]
//                                  [--audience NAME] [--policy PREFIX=POLICY ...]
//
// Every path under a --policy prefix shows what the gateway asserts (req.irma), as a page or as
// JSON for Accept: application/json; every other path gets 403.
import { parseArgs } from 'node:util';
import express from 'express';
import { irmaGateway } from './irma-gateway.js';

const { values: opts } = parseArgs({
  options: {
    listen: { type: 'string', default: '127.0.0.1:9090' },
    'jwks-url': { type: 'string', default: 'http://localhost:8080/irma/jwks.json' },
    issuer: { type: 'string', default: 'http://localhost:8080' },
    audience: { type: 'string', default: 'caddy-irma' },
    policy: { type: 'string', multiple: true, default: ['/members/=members'] },
  },
});

const HTML_ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHTML = (s) => String(s).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);

// hello shows who the gateway says the visitor is.
function hello(req, res) {
  // Plain headers that a route may add with "header" in irma_auth: convenient, not signed.
  const legacy = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.startsWith('x-irma-attr-')));
  res.set({ 'Cache-Control': 'no-store', Vary: 'Accept' }); // about one person: no shared cache
  const path = req.originalUrl.split('?', 1)[0];
  if ((req.get('Accept') ?? '').includes('application/json')) {
    const { policy, subject, attributes } = req.irma;
    return res.json({ policy, subject, attributes, path, legacy_headers: legacy });
  }
  const rows = Object.entries(req.irma.attributes).sort()
    .map(([k, v]) => `<tr><td><code>${escapeHTML(k)}</code></td><td>${escapeHTML(v)}</td></tr>`).join('\n');
  res.type('html').send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example upstream</title></head><body>
<h1>Hello from the example upstream</h1>
<p>Served by Express behind the gateway.</p>
<p>Path: <code>${escapeHTML(path)}</code></p>
<p>Policy: <code>${escapeHTML(req.irma.policy)}</code></p>
<table>${rows}</table>
</body></html>
`);
}

const irma = irmaGateway({ jwksUrl: opts['jwks-url'], issuer: opts.issuer, audience: opts.audience });
const app = express();
app.disable('x-powered-by');
// The longest prefix first, so that /members/vip/ is not taken by /members/.
const routes = opts.policy.map((v) => v.split(/=(.*)/s, 2)).sort(([a], [b]) => b.length - a.length);
for (const [prefix, policy] of routes) {
  if (!prefix.startsWith('/') || !policy) {
    console.error(`upstream: --policy ${prefix}=${policy}: want PREFIX=POLICY, such as /adults/=adults`);
    process.exit(2);
  }
  app.use(prefix, irma.requirePolicy(policy), hello);
}
app.use((req, res) => res.status(403).type('text/plain').send('no policy is configured for this path\n'));

const at = opts.listen.lastIndexOf(':');
const server = app.listen(Number(opts.listen.slice(at + 1)), opts.listen.slice(0, at).replace(/^\[|\]$/g, ''), () => {
  const { address, port } = server.address();
  console.log(`upstream: listening on http://${address}:${port} (Express, jose)`);
});
