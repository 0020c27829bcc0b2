package caddyirma

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// DefaultJWTIssuer is the iss of session result JWTs unless jwt_issuer says
// otherwise: irma server's default.
const DefaultJWTIssuer = "irmaserver"

// provisionResultJWT loads the key that signs session results, and hands it
// to irmaserver with the issuer, so that irmaserver signs the results it
// posts to callback URLs itself.
func (a *App) provisionResultJWT(repl *caddy.Replacer) error {
	a.resultIssuerSet = a.JWTIssuer != ""
	if !a.resultIssuerSet {
		a.JWTIssuer = DefaultJWTIssuer
	}
	if a.JWTPrivateKeyFile != "" {
		key, err := readRSAKey(repl.ReplaceAll(a.JWTPrivateKeyFile, ""))
		if err != nil {
			return fmt.Errorf("irma: jwt_privkey_file %q: %w", a.JWTPrivateKeyFile, err)
		}
		a.resultKey = key
	}
	// The parsed key, not the file: irmaserver would read the file again
	// at start, after Provision has checked it.
	a.serverConf.JwtRSAPrivateKey = a.resultKey
	a.serverConf.JwtIssuer = a.JWTIssuer
	a.serverConf.AllowUnsignedCallbacks = a.AllowUnsignedCallbacks
	return nil
}

// resultKeyID identifies the result JWT key by its public key ("" for
// none), so that a reload with another key starts another server.
func (a *App) resultKeyID() string {
	if a.resultKey == nil {
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(&a.resultKey.PublicKey)
	if err != nil {
		return "unmarshallable"
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// resultJWT returns the key and issuer with which irma_requestor_api
// signs results: the app's, unless the handler's own (deprecated)
// jwt_key_file and jwt_issuer say otherwise. A handler key that differs
// from the app's is an error: a requestor would get results signed with
// two keys, and /publickey would verify only one of them.
func (h *RequestorAPI) resultJWT(app *App, repl *caddy.Replacer, logger *zap.Logger) (*rsa.PrivateKey, string, error) {
	key, issuer := app.resultKey, app.JWTIssuer
	if h.JWTKeyFile != "" {
		own, err := readRSAKey(repl.ReplaceAll(h.JWTKeyFile, ""))
		if err != nil {
			return nil, "", fmt.Errorf("irma_requestor_api: jwt_key_file %q: %w", h.JWTKeyFile, err)
		}
		if key != nil && !key.PublicKey.Equal(&own.PublicKey) {
			return nil, "", fmt.Errorf("irma_requestor_api: jwt_key_file %q is not the key of the irma app's jwt_privkey_file %q: "+
				"results and callbacks would be signed with two keys; drop jwt_key_file, which is deprecated", h.JWTKeyFile, app.JWTPrivateKeyFile)
		}
		logger.Warn("irma_requestor_api: jwt_key_file is deprecated and will be removed in the next release: "+
			"set jwt_privkey_file in the irma global option, which also signs the results posted to callback URLs",
			zap.String("jwt_key_file", h.JWTKeyFile))
		key = own
	}
	if h.JWTIssuer != "" && h.JWTIssuer != issuer {
		if app.resultIssuerSet {
			return nil, "", fmt.Errorf("irma_requestor_api: jwt_issuer %q is not the irma app's jwt_issuer %q: drop it from irma_requestor_api, where it is deprecated", h.JWTIssuer, issuer)
		}
		logger.Warn("irma_requestor_api: jwt_issuer is deprecated and will be removed in the next release: "+
			"set jwt_issuer in the irma global option; the results posted to callback URLs carry that one ("+DefaultJWTIssuer+" by default)",
			zap.String("jwt_issuer", h.JWTIssuer))
		issuer = h.JWTIssuer
	} else if h.JWTIssuer != "" {
		logger.Warn("irma_requestor_api: jwt_issuer is deprecated and will be removed in the next release: the irma app's jwt_issuer is the same; drop it")
	}
	return key, issuer, nil
}

func readRSAKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block in it")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not an RSA private key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA private key")
	}
	return rk, nil
}
