// Command upstream is an example app behind the caddy-irma gateway. It trusts a request only if
// it carries the gateway's identity token (a JWT in the X-Irma-Identity header), the token
// verifies against the gateway's published keys (its JWK set), and the token was minted for the
// policy of the request's route; then it shows who the gateway says the visitor is.
//
//	go run ./examples/upstream [--listen 127.0.0.1:9090 (port 0: any free port)] [--jwks-url URL] [--issuer URL]
//	                           [--audience NAME] [--header NAME] [--policy PREFIX=POLICY ...]
//
// It uses nothing but the standard library and github.com/golang-jwt/jwt/v5: copy verifier.go
// into your own app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9090", "the `address` to listen on")
	jwksURL := flag.String("jwks-url", "http://localhost:8080/irma/jwks.json", "where the gateway publishes its keys (JWK set)")
	issuer := flag.String("issuer", "http://localhost:8080", "the iss the tokens must have: the gateway's URL")
	audience := flag.String("audience", "caddy-irma", "the aud the tokens must have")
	header := flag.String("header", DefaultHeader, "the request header that holds the identity token")
	var policies map[string]string
	flag.Func("policy", "`PREFIX=POLICY`: paths under PREFIX take only tokens of POLICY (repeat it for each route; "+
		"default: the demo's /members/=members, /adults/=adults and /club/=club)", func(v string) error {
		if policies == nil {
			policies = map[string]string{}
		}
		return addPolicy(policies, v)
	})
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "upstream: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	if policies == nil {
		policies = DefaultPolicies
	}
	if err := run(*listen, *jwksURL, *issuer, *audience, *header, policies); err != nil {
		log.Fatalf("upstream: %v", err)
	}
}

// addPolicy adds a route of the --policy flag, PREFIX=POLICY, to policies.
func addPolicy(policies map[string]string, v string) error {
	prefix, name, ok := strings.Cut(v, "=")
	if !ok || !strings.HasPrefix(prefix, "/") || name == "" {
		return fmt.Errorf("%q: want PREFIX=POLICY, such as /adults/=adults", v)
	}
	if !canonicalPath(prefix) {
		return fmt.Errorf("%q: the prefix %q is not a canonical path", v, prefix)
	}
	if _, dup := policies[prefix]; dup {
		return fmt.Errorf("%q: the prefix %q is given twice", v, prefix)
	}
	policies[prefix] = name
	return nil
}

func run(listen, jwksURL, issuer, audience, header string, policies map[string]string) error {
	u, err := url.Parse(jwksURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--jwks-url %q: want an http or https URL", jwksURL)
	}
	if issuer == "" || audience == "" || header == "" {
		return errors.New("--issuer, --audience and --header must not be empty")
	}
	handler := &Handler{
		Verifier: NewVerifier(jwksURL, issuer, audience),
		Header:   textproto.CanonicalMIMEHeaderKey(header),
		Policies: policies,
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Listen first, so that the log line names the port even for --listen 127.0.0.1:0 (a free
	// port, as the tests use), and says it only once requests can come.
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("upstream: listening on http://%s, trusting tokens from %s (keys at %s) for %q in %s, on the routes %s",
		ln.Addr(), issuer, jwksURL, audience, handler.Header, describePolicies(policies))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// describePolicies lists the routes, by prefix, for the log.
func describePolicies(policies map[string]string) string {
	routes := make([]string, 0, len(policies))
	for prefix, name := range policies {
		routes = append(routes, prefix+"="+name)
	}
	slices.Sort(routes)
	return strings.Join(routes, " ")
}
