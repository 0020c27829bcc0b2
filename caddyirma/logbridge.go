package caddyirma

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/sirupsen/logrus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// irmaLogs is the one bridge irmago writes to. irmago keeps its loggers in
// package-wide variables (server.Logger, irma.Logger), so there is one per
// process; what it writes goes to whichever zap logger the running irma app
// set last.
var irmaLogs = newLogrusBridge()

// logrusBridge forwards logrus entries to a zap logger that can be swapped at
// any time (config reloads give the app a new zap logger).
type logrusBridge struct {
	logger *logrus.Logger
	target atomic.Pointer[zap.Logger]
}

// newLogrusBridge returns a bridge whose logrus logger writes to the bridge's
// zap logger, and nowhere else.
//
// The level is capped at Info on purpose: at Debug and Trace irmago logs
// session requests and results with attribute values, request bodies and
// tokens, which must never reach a log.
func newLogrusBridge() *logrusBridge {
	b := &logrusBridge{}
	b.target.Store(zap.NewNop())
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.InfoLevel)
	l.AddHook(b)
	// irmago never calls Fatal on the server path; if it did, a Caddy process
	// serving other sites must not exit because of it.
	l.ExitFunc = func(int) {}
	b.logger = l
	return b
}

// setTarget sends the bridge's output to l from now on.
func (b *logrusBridge) setTarget(l *zap.Logger) { b.target.Store(l) }

// Levels implements logrus.Hook.
func (b *logrusBridge) Levels() []logrus.Level { return logrus.AllLevels }

// Fire implements logrus.Hook.
func (b *logrusBridge) Fire(e *logrus.Entry) error {
	logger := b.target.Load()
	level := zapLevel(e.Level)
	ce := logger.Check(level, e.Message)
	if ce == nil {
		return nil
	}
	fields := make([]zap.Field, 0, len(e.Data))
	for k, v := range e.Data {
		if tokenFields[strings.ToLower(k)] {
			fields = append(fields, zap.String(k, fingerprint(fmt.Sprint(v))))
			continue
		}
		if err, ok := v.(error); ok {
			fields = append(fields, zap.NamedError(k, err))
			continue
		}
		fields = append(fields, zap.Any(k, v))
	}
	ce.Write(fields...)
	return nil
}

// tokenFields are the fields in which irmago logs session tokens. A
// requestor token is the key to a session's result, so the log gets a
// fingerprint that still ties the lines of one session together.
var tokenFields = map[string]bool{"session": true, "clienttoken": true, "token": true, "requestortoken": true}

// fingerprint returns a short, one-way stand-in for a secret.
func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:6])
}

// zapLevel maps logrus levels onto zap's. Panic and Fatal become Error: zap's
// own Panic and Fatal levels would end the process.
func zapLevel(l logrus.Level) zapcore.Level {
	switch l {
	case logrus.TraceLevel, logrus.DebugLevel:
		return zapcore.DebugLevel
	case logrus.InfoLevel:
		return zapcore.InfoLevel
	case logrus.WarnLevel:
		return zapcore.WarnLevel
	default:
		return zapcore.ErrorLevel
	}
}
