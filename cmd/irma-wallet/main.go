//go:build cgo

// Command irma-wallet is a development IRMA wallet for the terminal: it performs IRMA sessions (issuance, disclosure,
// attribute-based signatures) against a site protected by caddy-irma, or any IRMA server, without a phone.
//
// It needs cgo and SQLCipher (libsqlcipher-dev): go build ./cmd/irma-wallet. Run irma-wallet --help for usage.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-irma/caddy-irma/caddyirma/wallet"
)

// Where the wallet and the schemes it trusts live unless told otherwise: the demo's state directory.
const (
	envDir         = "IRMA_WALLET_DIR"
	envSchemes     = "IRMA_WALLET_SCHEMES"
	defaultDir     = ".demo/wallet"
	defaultSchemes = ".demo/schemes"
)

const usage = `irma-wallet is a development IRMA wallet: it performs IRMA sessions against a site
protected by caddy-irma, or any IRMA server in development mode, without a phone.

Usage:
  irma-wallet [flags] session [--yes] [--timeout DURATION] POINTER_OR_URL
  irma-wallet [flags] list

Commands:
  session   perform one session: show what is asked, ask "Proceed? [y/N]", and say how it went.
            The exit status is 0 only if the session succeeded.
  list      list the credentials in the wallet, with their attribute values.

POINTER_OR_URL is one of:
  - a session pointer:  '{"u":"https://host/irma/session/...","irmaqr":"disclosing"}'
  - a JSON object holding one under "sessionPtr", as irma server answers to POST /session
  - a Yivi universal link:  https://open.yivi.app/-/session#... (also https://irma.app/-/session#...)
  - the URL of a protected page: the wallet GETs it asking for JSON, and uses the session
    pointer the page answers with
  - "-": read any of the above from standard input

Flags (also accepted after the command):
  --dir DIR        the wallet's directory, created if missing; credentials persist there.
                   Default: $IRMA_WALLET_DIR, else .demo/wallet
  --schemes DIR    the IRMA schemes the wallet trusts, one subdirectory per scheme.
                   Default: $IRMA_WALLET_SCHEMES, else .demo/schemes (where the demo writes its scheme)
  --production     refuse what the Yivi app refuses out of the box: servers not in production
                   mode, and plain http (see below)
  -v, --verbose    log what the wallet and irmago do, to standard error
  --yes            (session) do not ask: proceed
  --timeout D      (session) give up after D (default 15m)

The wallet runs in developer mode: it accepts servers that are not in production mode and plain http.
With --production it does not, as the Yivi app: then it needs https with a certificate it trusts. To
trust a local CA, such as Caddy's tls internal one in the https demo (make run-https), name its root
in $SSL_CERT_FILE:
  SSL_CERT_FILE=.demo-https/caddy/pki/authorities/local/root.crt irma-wallet --production ...
It keeps its storage key and device key unprotected in its directory: use it for demo credentials only.
`

// exit codes
const (
	exitOK      = 0
	exitFailed  = 1 // the session failed or was refused, or something else went wrong
	exitUsage   = 2
	programName = "irma-wallet"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// config is what the flags say.
type config struct {
	dir, schemes string
	verbose      bool
	production   bool
	yes          bool
	timeout      time.Duration
}

func (c *config) commonFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.dir, "dir", c.dir, "")
	fs.StringVar(&c.schemes, "schemes", c.schemes, "")
	fs.BoolVar(&c.verbose, "verbose", c.verbose, "")
	fs.BoolVar(&c.verbose, "v", c.verbose, "")
	fs.BoolVar(&c.production, "production", c.production, "")
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by run, usage by --help
	return fs
}

// parseInterspersed parses flags wherever they are among the arguments, and returns the others.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg := &config{
		dir:     envOr(envDir, defaultDir),
		schemes: envOr(envSchemes, defaultSchemes),
		timeout: wallet.DefaultSessionTimeout,
	}
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, programName+": "+format+"\n", a...)
		return code
	}
	usageError := func(format string, a ...any) int {
		return fail(exitUsage, format+" (see %s --help)", append(a, programName)...)
	}

	global := newFlagSet(programName)
	cfg.commonFlags(global)
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		return usageError("%v", err)
	}
	if global.NArg() == 0 {
		return usageError("no command given")
	}
	command, args := global.Arg(0), global.Args()[1:]

	fs := newFlagSet(command)
	cfg.commonFlags(fs)
	switch command {
	case "session":
		fs.BoolVar(&cfg.yes, "yes", false, "")
		fs.BoolVar(&cfg.yes, "y", false, "")
		fs.DurationVar(&cfg.timeout, "timeout", cfg.timeout, "")
	case "list":
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		return usageError("unknown command %q", command)
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		return usageError("%s: %v", command, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch command {
	case "session":
		if len(positional) != 1 {
			return usageError("session: want one POINTER_OR_URL, got %d arguments", len(positional))
		}
		if cfg.timeout <= 0 {
			return usageError("session: --timeout must be positive")
		}
		return sessionCommand(ctx, cfg, positional[0], stdin, stdout, stderr, fail)
	default: // list
		if len(positional) != 0 {
			return usageError("list: unexpected argument %q", positional[0])
		}
		return listCommand(cfg, stdout, stderr, fail)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newLogger(verbose bool, stderr io.Writer) *zap.Logger {
	if !verbose {
		return zap.NewNop()
	}
	enc := zapcore.NewConsoleEncoder(zapcore.EncoderConfig{
		TimeKey:          "T",
		LevelKey:         "L",
		NameKey:          "N",
		MessageKey:       "M",
		EncodeTime:       zapcore.TimeEncoderOfLayout("15:04:05.000"),
		EncodeLevel:      zapcore.LowercaseLevelEncoder,
		EncodeName:       zapcore.FullNameEncoder,
		ConsoleSeparator: " ",
	})
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(stderr), zapcore.DebugLevel))
}

func openWallet(cfg *config, stdout, stderr io.Writer) (*wallet.Wallet, error) {
	if _, err := os.Stat(cfg.schemes); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("schemes directory %s does not exist: start the demo first, or pass --schemes or set $%s", cfg.schemes, envSchemes)
	}
	return wallet.Open(wallet.Options{
		Dir:         cfg.dir,
		SchemesPath: cfg.schemes,
		Logger:      newLogger(cfg.verbose, stderr),
		Production:  cfg.production,
		OnPairingCode: func(code string) {
			fmt.Fprintf(stdout, "The site asks to pair: enter %s on the page that shows the QR code.\n", code)
		},
	})
}

func sessionCommand(ctx context.Context, cfg *config, arg string, stdin io.Reader, stdout, stderr io.Writer, fail func(int, string, ...any) int) int {
	answers := stdin
	if arg == "-" {
		data, err := io.ReadAll(io.LimitReader(stdin, wallet.MaxPointerSize+1))
		if err != nil {
			return fail(exitFailed, "reading the session pointer from standard input: %v", err)
		}
		arg = string(data)
		answers = nil
		if !cfg.yes {
			tty, err := os.Open("/dev/tty")
			if err != nil {
				return fail(exitUsage, "the session pointer came from standard input and there is no terminal to ask for consent: pass --yes")
			}
			defer tty.Close()
			answers = tty
		}
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	sess, err := wallet.FetchSession(ctx, nil, arg)
	if err != nil {
		return fail(exitFailed, "%v", err)
	}
	if sess.Pairing != nil {
		fmt.Fprintln(stdout, "The site asks to pair the app with the page; the wallet fetched the session itself, so it confirms the pairing code itself.")
	}

	w, err := openWallet(cfg, stdout, stderr)
	if err != nil {
		return fail(exitFailed, "%v", err)
	}
	defer w.Close()

	in := bufio.NewReader(orEmpty(answers))
	consent := func(r wallet.Request) bool {
		fmt.Fprint(stdout, describe(r))
		if cfg.yes {
			fmt.Fprintln(stdout, "Proceeding (--yes).")
			return true
		}
		fmt.Fprint(stdout, "Proceed? [y/N] ")
		line, err := in.ReadString('\n')
		if err != nil && line == "" {
			fmt.Fprintln(stdout)
		}
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return true
		}
		return false
	}

	res, err := w.RunSession(ctx, sess, consent)
	switch res.Outcome {
	case wallet.Success:
		fmt.Fprintln(stdout, summary(res))
		return exitOK
	case wallet.Refused:
		fmt.Fprintln(stdout, "Refused: the session is cancelled.")
		return exitFailed
	default:
		if errors.Is(err, context.DeadlineExceeded) {
			return fail(exitFailed, "gave up after %v: the session is cancelled", cfg.timeout)
		}
		if errors.Is(err, context.Canceled) {
			return fail(exitFailed, "interrupted: the session is cancelled")
		}
		return fail(exitFailed, "%v", err)
	}
}

func orEmpty(r io.Reader) io.Reader {
	if r == nil {
		return strings.NewReader("")
	}
	return r
}

func listCommand(cfg *config, stdout, stderr io.Writer, fail func(int, string, ...any) int) int {
	w, err := openWallet(cfg, stdout, stderr)
	if err != nil {
		return fail(exitFailed, "%v", err)
	}
	defer w.Close()
	creds, err := w.Credentials()
	if err != nil {
		return fail(exitFailed, "%v", err)
	}
	if len(creds) == 0 {
		fmt.Fprintf(stdout, "No credentials in %s.\n", w.Dir())
		return exitOK
	}
	var b strings.Builder
	for i, c := range creds {
		if i > 0 {
			b.WriteString("\n")
		}
		writeCredential(&b, c, "")
	}
	fmt.Fprint(stdout, b.String())
	return exitOK
}

// describe says in English what a request asks.
func describe(r wallet.Request) string {
	var b strings.Builder
	who := text(r.Requestor.Name)
	if who == "" {
		who = text(r.Requestor.ID)
	}
	if !r.Requestor.Verified {
		who += " (not verified by a requestor scheme)"
	}
	b.WriteString("\n")
	switch r.Type {
	case irma.ActionIssuing:
		fmt.Fprintf(&b, "%s wants to issue you %s:\n", who, plural(len(r.Issue), "credential", "credentials"))
		for _, c := range r.Issue {
			writeCredential(&b, c, "  ")
		}
		if hasDisclosure(r) {
			b.WriteString("It first asks you to disclose:\n")
			writeDisclosures(&b, r.Disclose)
		}
	case irma.ActionSigning:
		fmt.Fprintf(&b, "%s asks you to sign this message:\n", who)
		for _, line := range strings.Split(r.Message, "\n") {
			fmt.Fprintf(&b, "  | %s\n", text(line))
		}
		b.WriteString("with these attributes, which the signature will show:\n")
		writeDisclosures(&b, r.Disclose)
	default:
		fmt.Fprintf(&b, "%s asks you to disclose:\n", who)
		writeDisclosures(&b, r.Disclose)
	}
	return b.String()
}

func hasDisclosure(r wallet.Request) bool {
	for _, d := range r.Disclose {
		if len(d.Attributes) > 0 {
			return true
		}
	}
	return false
}

func writeDisclosures(b *strings.Builder, ds []wallet.Disclosure) {
	if len(ds) == 0 {
		b.WriteString("  nothing\n")
	}
	for _, d := range ds {
		if len(d.Attributes) == 0 {
			b.WriteString("  - nothing for an optional item (you hold nothing that fits it)\n")
			continue
		}
		for i, a := range d.Attributes {
			bullet := "  - "
			if i > 0 {
				bullet = "    "
			}
			fmt.Fprintf(b, "%s%s: %s  [%s]\n", bullet, text(a.Name), value(a.Value), a.Type)
		}
		var notes []string
		if d.Optional {
			notes = append(notes, "optional")
		}
		if d.Choices > 1 {
			notes = append(notes, fmt.Sprintf("the first of %d options you could use", d.Choices))
		}
		if len(notes) > 0 {
			fmt.Fprintf(b, "    (%s)\n", strings.Join(notes, "; "))
		}
	}
}

func writeCredential(b *strings.Builder, c wallet.Credential, indent string) {
	fmt.Fprintf(b, "%s%s  [%s]\n", indent, text(c.Name), c.Type)
	var dates []string
	if c.Issuer != "" {
		dates = append(dates, "issued by "+text(c.Issuer))
	}
	if !c.IssuedAt.IsZero() {
		dates = append(dates, "on "+c.IssuedAt.Format("2006-01-02"))
	}
	if !c.Expires.IsZero() {
		dates = append(dates, "valid until "+c.Expires.Format("2006-01-02"))
	}
	if c.Revoked {
		dates = append(dates, "REVOKED")
	}
	if len(dates) > 0 {
		fmt.Fprintf(b, "%s  %s\n", indent, strings.Join(dates, ", "))
	}
	for _, a := range c.Attributes {
		fmt.Fprintf(b, "%s  %s: %s\n", indent, text(a.Name), value(a.Value))
	}
}

func summary(res *wallet.Result) string {
	var parts []string
	if n := len(res.Disclosed); n > 0 {
		parts = append(parts, "disclosed "+plural(n, "attribute", "attributes"))
	}
	if n := len(res.Issued); n > 0 {
		parts = append(parts, "received "+plural(n, "credential", "credentials"))
	}
	for _, r := range res.Requests {
		if r.Type == irma.ActionSigning {
			parts = append(parts, "signed the message")
			break
		}
	}
	if len(parts) == 0 {
		return "Done."
	}
	return "Done: " + strings.Join(parts, ", ") + "."
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// value renders an attribute value for the terminal: quoted if it has surrounding space, shortened if long (photos).
func value(v string) string {
	if v == "" {
		return "(empty)"
	}
	v = text(v)
	if r := []rune(v); len(r) > 100 {
		v = string(r[:100]) + fmt.Sprintf("... (%d bytes)", len(v))
	}
	if strings.TrimSpace(v) != v {
		return fmt.Sprintf("%q", v)
	}
	return v
}

// text drops control characters: what is printed comes from servers and issuers.
func text(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return -1
		case unicode.Is(unicode.Bidi_Control, r) || r == 0x200b || r == 0xfeff:
			// Bidirectional overrides and invisible characters would let a
			// server show a message to sign other than the one signed.
			return '\ufffd'
		}
		return r
	}, s)
}
