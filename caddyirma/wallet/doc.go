//go:build cgo

// Package wallet is a development IRMA wallet: irmago's wallet library (the one inside the Yivi app) driven from Go,
// so that a developer can try a protected site without a phone, and end-to-end tests can log in.
//
// It needs cgo and SQLCipher (libsqlcipher-dev): irmago's wallet keeps part of its storage in SQLCipher. Its files
// carry a cgo build constraint, so that CGO_ENABLED=0 go build ./... (the Caddy binary's build) skips the package
// rather than failing inside irmago. Nothing in the Caddy module may import it; the irma-wallet command
// (cmd/irma-wallet) and tests do.
//
// # Use
//
//	w, err := wallet.Open(wallet.Options{Dir: dir, SchemesPath: schemes})
//	defer w.Close()
//	ptr, err := wallet.FetchPointer(ctx, nil, "https://site.example/protected")
//	res, err := w.Run(ctx, ptr, wallet.Accept)
//
// Run performs one session and returns when it ends or ctx ends. For a disclosure it picks, for each requested item,
// the first option the wallet can satisfy; a request it cannot satisfy ends the session with a *MissingError saying
// what is missing. The server learns of a refusal or a cancellation before Run returns.
//
// # State
//
// Options.Dir holds:
//   - irma/: irmago's bbolt database (credentials, logs, preferences, encrypted with the storage key) and its copy of
//     the schemes (irma/irma_configuration, refreshed from Options.SchemesPath when a scheme's timestamp is newer);
//   - eudi/: irmago's SQLCipher database for EUDI credentials (unused here, but irmago always opens it);
//   - storage.key: the 32-byte AES key of both databases, hex, created at random on first use (0600);
//   - signer.pem: the wallet's ECDSA P-256 device key (irmaclient.Signer), created on first use (0600);
//   - wallet.lock: locked while the wallet is open.
//
// The Yivi app keeps the storage key in the phone's keystore and the device key in secure hardware. Here both sit
// next to the data they protect: encryption at rest is nominal, which suits demo credentials and nothing else. The
// device key is only used with keyshare servers (PIN-protected schemes such as pbdf), which a development wallet does
// not support; irmago requires one anyway.
//
// # Process-wide settings
//
// irmago and go-atum keep some state in package variables, shared by the whole process:
//   - irmago logs through irma.Logger (logrus). Open points it at Options.Logger (nil discards), with irmago's Info
//     demoted to Debug and Trace dropped, so that attribute values never appear above Debug. An IRMA server in the same
//     process sets the same variable when it starts: whichever came last receives the logs of both.
//   - go-atum, which irmago uses to get (wallet) and check (verifier) the timestamps of attribute-based signatures,
//     caches the timestamp servers' keys in a bolt database under $HOME/.cache/atum by default, created on the first
//     signature session. This package imports caddyirma/timestamp, whose init replaces that cache with one in
//     memory: neither the wallet nor a verifier in the same process writes to the home directory, and a gateway in
//     the same process (an end-to-end test) keeps the keys it trusts through timestamp.TrustOwnKey.
//
// # Developer mode
//
// The wallet runs in irmago's developer mode unless Options.Production: servers not in production mode mark their
// sessions as development sessions, which wallets refuse otherwise, and plain http is allowed. Switching it on makes
// irmago fetch certificate revocation lists for its EUDI trust anchors; offline that fails quickly, with warnings in
// the log.
//
// With Options.Production the wallet is as strict as the Yivi app out of the box: it refuses development sessions
// ("server running in developer mode") and servers on plain http, so it works only with a gateway in production mode
// on https. It trusts the certificates the process trusts: Go's system roots, which $SSL_CERT_FILE replaces (Caddy's
// tls internal root, for instance, is pki/authorities/local/root.crt in Caddy's storage). irmago and go-atum make
// their requests with process-wide HTTP settings (irma.SetTLSClientConfig, http.DefaultClient), not the wallet's.
//
// # Differences from the Yivi app
//
// No PIN and no keyshare server: sessions that need one fail. Requests the wallet cannot satisfy fail rather than
// offer issuance. Nonrevocation witnesses are refreshed only by the sessions that use them: the app's background
// refresh at random times (which keeps an issuer from recognising a phone by its update rhythm) races with sessions
// inside irmago v1.3.0, and the wallet removes it.
package wallet
