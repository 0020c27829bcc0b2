// Package e2e holds the end-to-end tests of caddy-irma: the development
// wallet (irmago's wallet library) performs real IRMA sessions against the
// IRMA server inside a real Caddy, with sessions in memory and in a real
// redis-server. It has no code of its own; it needs cgo, for the wallet.
package e2e
