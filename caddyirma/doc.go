// Package caddyirma is the Caddy face of caddy-irma: the irma app, which runs
// an embedded IRMA server (irmago's irmaserver), and the HTTP handlers that
// expose it on a site: irma_endpoints, irma_auth, irma_issue, irma_sign and
// irma_requestor_api. The work is done by the packages beside it, which know
// nothing of Caddy: policy, sealedcookie, assertion, returnurl, canonicalpath,
// sessionpage, signature, timestamp, requestor and schemecache.
//
// A request to a route that irma_auth protects meets the code in this order:
//
//   - paths.go: first of all, irma_endpoints and irma_auth refuse (400) a
//     request whose path another server may read as another path (dot
//     segments, encoded slashes, ";", "//"; package canonicalpath decides):
//     Caddy's matchers read the path cleaned, reverse_proxy forwards it as
//     it came.
//   - endpoints.go: irma_endpoints stands at the top of the site. Paths under
//     the app's prefix (/irma/) are the gateway's own (the Yivi app's
//     protocol, the session pages' status and pairing, the JWKS, login,
//     forward auth, and logout in logout.go; a store that fails
//     is a 503 there too, unavailable.go; CORS for the session pages of
//     the origins in cors_origins, and their preflights, cors.go); it
//     passes every other request on, through the shield.
//   - shield.go: headers of the gateway's namespace (X-Irma-*, the identity
//     header, plain attribute headers) that a client sent are removed, in
//     every spelling, and a request that declares one as a trailer is
//     refused; the gateway's cookies are hidden from the upstream.
//   - auth.go: irma_auth hands the request to its login flow.
//   - loginflow.go: the flow reads the session cookie (cookies.go; a value
//     that opened before comes from the bounded cache of logins,
//     logincache.go), looks up in the store of marks whether a logout
//     revoked its login (logout.go, on every request; 503 if the store
//     cannot say), and checks the route's policy. A login that satisfies it goes back to irma_auth.
//     Otherwise, if the visitor has a pending cookie for the route, the flow
//     looks up that session (session.go), takes the credential expiry that
//     the proofs left as a mark (proofs.go), and grants the login; if not,
//     a request that asks for a session (session.go, startsSession; where
//     it comes from: origin.go) gets a disclosure session for what is
//     missing, as JSON or the login page, with a pending cookie, and any
//     other (a page navigation) the login page whose script asks. Every
//     session start passes the session limits first (limits.go: counted in
//     the Redis of the sessions, else in the process; 429 over a bound,
//     503 if they cannot be counted).
//   - auth.go: the logged-in request goes on with the identity JWT, plain
//     attribute headers and {irma.*} placeholders (what the route makes of
//     a cached login is derived once and kept with it, logincache.go), and
//     a response that no shared cache keeps (shield.go).
//
// The sessions run on the app: app.go (its settings, Provision as a list of
// steps; the named policies in policies.go), schemes.go (where the schemes come from: schemes_path, and the
// default schemes, which package schemecache fetches the first time),
// schemesload.go (the schemes and issuer keys, parsed and checked),
// schemesupdate.go (updates, handed to the running server whole), redis.go
// (the session store: one Redis server, or Redis Sentinel) and
// redisconnect.go (the checks at start, the gateway's own clients), login.go
// (the cookie and JWT keys, loaded at start) and server.go
// (the IRMA server, shared across reloads, and the marks that sessions and
// logouts leave: in the Redis of the sessions, else in the process).
// irma_issue (issue.go) and irma_sign (sign.go, signresult.go) use the same
// session path; the static sessions of the app (staticsessions.go), which
// the Yivi app starts at the endpoints, pass the session limits as well,
// and the gateway posts their results itself, bounded (resultpost.go);
// irma_requestor_api (requestorapi.go) wires package
// requestor to the server, with the app's key and issuer of result JWTs,
// which irmaserver signs callbacks with too (resultjwt.go), and answers
// the server's question whether a chained session may start (chains.go);
// where a chain fails, the Yivi app hears no next-session URL
// (nexterrors.go). Revocation (revocation.go, revocationroutes.go,
// loginrevocation.go) makes the app the authority of revocable credential
// types, with a SQL database. What the
// handlers decide goes to the metrics (metrics.go) and the audit log
// (audit.go); sessionwatch.go follows an
// issuance, a requestor's or a static session, which no browser brings
// back, to its end for both. statusstream.go serves the statusevents routes (of the
// endpoints and of the requestor API) with package statusevents: a page, the
// Yivi frontend or a requestor hears that a session changed when it did.
//
// The 'caddy irma' commands live in command.go: demo-scheme, schemes, and
// policy (policycmd.go), which finds the irma_auth routes in an adapted
// config (policyroutes.go) and checks their policies against the schemes
// offline, showing the request and the words of a login (policycheck.go).
package caddyirma
