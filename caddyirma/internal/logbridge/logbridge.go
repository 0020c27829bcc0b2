// Package logbridge sends what irmago logs through logrus to a zap logger.
//
// irmago keeps its loggers in package-wide variables (irma.Logger,
// server.Logger), so a process has one irmago log whatever it runs: the
// gateway points it at its bridge, the development wallet at its own.
package logbridge

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Bridge forwards the entries of its logrus logger to a zap logger that can
// be swapped at any time (a config reload brings a new one).
type Bridge struct {
	logger     *logrus.Logger
	target     atomic.Pointer[zap.Logger]
	demoteInfo bool
	mu         sync.Mutex // held while the target and logrus's level change
}

// New returns a bridge whose logrus logger writes to the bridge's zap logger,
// and nowhere else, until SetTarget a no-op logger.
//
// It never forwards Debug and Trace: at those levels irmago logs session
// requests and results with attribute values, request bodies and tokens.
// With demoteInfo, Info becomes Debug: irmago's wallet code logs attribute
// values at Info.
//
// The logrus logger's level follows the target: it is the most verbose
// level (Info at most) that the target writes, so that irmago builds no
// entry that the target would drop.
func New(demoteInfo bool) *Bridge {
	b := &Bridge{demoteInfo: demoteInfo}
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.AddHook(b)
	// A library must not end the process: a Caddy process serves other sites.
	l.ExitFunc = func(int) {}
	b.logger = l
	b.SetTarget(zap.NewNop())
	return b
}

// Logger returns the logrus logger to hand to irmago.
func (b *Bridge) Logger() *logrus.Logger { return b.logger }

// SetTarget sends the bridge's output to l from now on.
func (b *Bridge) SetTarget(l *zap.Logger) { b.Swap(l) }

// Swap sends the bridge's output to l from now on, and returns the logger
// it went to before.
func (b *Bridge) Swap(l *zap.Logger) *zap.Logger {
	b.mu.Lock()
	defer b.mu.Unlock()
	prev := b.target.Swap(l)
	b.logger.SetLevel(b.levelFor(l))
	return prev
}

// Release stops sending to l if it is the current target.
func (b *Bridge) Release(l *zap.Logger) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.target.CompareAndSwap(l, zap.NewNop()) {
		b.logger.SetLevel(b.levelFor(zap.NewNop()))
	}
}

// levelFor is the logrus level for target l: the most verbose of Info,
// Warn and Error that l writes (Error if none).
func (b *Bridge) levelFor(l *zap.Logger) logrus.Level {
	for _, level := range []logrus.Level{logrus.InfoLevel, logrus.WarnLevel} {
		if l.Core().Enabled(b.zapLevel(level)) {
			return level
		}
	}
	return logrus.ErrorLevel
}

// Levels implements logrus.Hook.
func (b *Bridge) Levels() []logrus.Level { return logrus.AllLevels }

// Fire implements logrus.Hook.
func (b *Bridge) Fire(e *logrus.Entry) error {
	target, level := b.target.Load(), b.zapLevel(e.Level)
	if !target.Core().Enabled(level) {
		return nil // before the work of redacting what is dropped
	}
	ce := target.Check(level, redactMessage(e.Message))
	if ce == nil {
		return nil
	}
	fields := make([]zap.Field, 0, len(e.Data))
	for k, v := range e.Data {
		switch {
		case tokenFields[strings.ToLower(k)]:
			fields = append(fields, zap.String(k, Fingerprint(fmt.Sprint(v))))
		case isError(v):
			fields = append(fields, zap.String(k, RedactPaths(v.(error).Error())))
		default:
			// Anything may hold a URL path with a token in it (irmago logs
			// the url of failed requests): log its text, redacted.
			if s, ok := v.(string); ok {
				fields = append(fields, zap.String(k, RedactPaths(s)))
			} else {
				fields = append(fields, zap.String(k, RedactPaths(fmt.Sprint(v))))
			}
		}
	}
	ce.Write(fields...)
	return nil
}

// tokenFields are the fields in which irmago logs session tokens. A
// requestor token is the key to a session's result, so the log gets a
// fingerprint that still ties the lines of one session together.
var tokenFields = map[string]bool{"session": true, "clienttoken": true, "token": true, "requestortoken": true}

func isError(v any) bool {
	_, ok := v.(error)
	return ok
}

// sessionPath matches the token in IRMA session URLs and paths, and
// namedToken one that a text names as a token (irmaserver's errors say
// "unknown session with clientToken <token>").
var (
	sessionPath = regexp.MustCompile(`(/session/)([A-Za-z0-9]+)`)
	namedToken  = regexp.MustCompile(`(?i)(\b(?:client|requestor)?token[ :=]+)([A-Za-z0-9]{8,})`)
	// userInfo is the user name and password in a URL, such as a
	// callback's or a next-session URL that a requestor gave.
	userInfo = regexp.MustCompile(`(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s"\\]+@`)
)

// RedactPaths replaces the session tokens in s by their fingerprints: those
// in IRMA session paths, and those that s names as tokens. A client token
// lets whoever holds it answer the session. It leaves out the user info of
// URLs too.
func RedactPaths(s string) string {
	if strings.Contains(s, "@") {
		s = userInfo.ReplaceAllString(s, "${1}(user info not logged)@")
	}
	if strings.Contains(s, "/session/") {
		s = sessionPath.ReplaceAllStringFunc(s, func(m string) string {
			return "/session/" + Fingerprint(strings.TrimPrefix(m, "/session/"))
		})
	}
	return namedToken.ReplaceAllStringFunc(s, func(m string) string {
		parts := namedToken.FindStringSubmatch(m)
		return parts[1] + Fingerprint(parts[2])
	})
}

// signedMessage matches the message of a signature request in irmago's
// "Session request (purged of attribute values)" lines: it is the text a
// visitor signs, and may hold the values of attributes; and the revocation
// keys of an issuance request's credentials, with which a requestor can
// revoke them, and which often name their holder.
var signedMessage = regexp.MustCompile(`("(?:message|revocationKey)":)"(?:[^"\\]|\\.)*"`)

// redactMessage is RedactPaths, and for the session requests that irmago
// logs at Info, without the message to sign and the revocation keys.
func redactMessage(s string) string {
	if strings.HasPrefix(s, "Session request") {
		s = signedMessage.ReplaceAllString(s, `$1"(not logged)"`)
	}
	return RedactPaths(s)
}

// Fingerprint returns a short, one-way stand-in for a secret, for logs.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:6])
}

// zapLevel maps logrus levels onto zap's. Panic and Fatal become Error:
// zap's own Panic and Fatal levels would end the process.
func (b *Bridge) zapLevel(l logrus.Level) zapcore.Level {
	switch l {
	case logrus.TraceLevel, logrus.DebugLevel:
		return zapcore.DebugLevel
	case logrus.InfoLevel:
		if b.demoteInfo {
			return zapcore.DebugLevel
		}
		return zapcore.InfoLevel
	case logrus.WarnLevel:
		return zapcore.WarnLevel
	default:
		return zapcore.ErrorLevel
	}
}
