//go:build cgo

package wallet

import (
	"io"
	"sync/atomic"

	"github.com/privacybydesign/irmago/irma"
	"github.com/sirupsen/logrus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// irmagoLogs is what irmago's wallet code logs to. irmago keeps its logger in package-wide variables (irma.Logger,
// and copies of it taken by irma.SetLogger), so there is one per process: Open points it at the bridge, and the
// bridge forwards to the logger of the wallet opened last. A process that also runs an IRMA server (a test) shares
// the variable with it: whichever was configured last receives both.
var irmagoLogs = newLogrusBridge()

// logrusBridge forwards logrus entries to a zap logger that can be swapped at any time.
type logrusBridge struct {
	logger *logrus.Logger
	target atomic.Pointer[zap.Logger]
}

// newLogrusBridge returns a bridge that writes to its zap logger only.
//
// The level is capped at Debug: at Trace irmago logs whole HTTP bodies (attribute values, tokens). Info is demoted to
// Debug (see zapLevel).
func newLogrusBridge() *logrusBridge {
	b := &logrusBridge{}
	b.target.Store(zap.NewNop())
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.DebugLevel)
	l.AddHook(b)
	l.ExitFunc = func(int) {} // irmago's wallet code does not call Fatal; if it did, do not exit from a library
	b.logger = l
	return b
}

// install makes irmago log through the bridge, to target.
func (b *logrusBridge) install(target *zap.Logger) {
	b.target.Store(target)
	if irma.Logger != b.logger {
		irma.SetLogger(b.logger)
	}
}

// release stops sending to target if it is the current target: the wallet that installed it closed.
func (b *logrusBridge) release(target *zap.Logger) {
	b.target.CompareAndSwap(target, zap.NewNop())
}

// Levels implements logrus.Hook.
func (b *logrusBridge) Levels() []logrus.Level { return logrus.AllLevels }

// Fire implements logrus.Hook.
func (b *logrusBridge) Fire(e *logrus.Entry) error {
	ce := b.target.Load().Check(zapLevel(e.Level), e.Message)
	if ce == nil {
		return nil
	}
	fields := make([]zap.Field, 0, len(e.Data))
	for k, v := range e.Data {
		if err, ok := v.(error); ok {
			fields = append(fields, zap.NamedError(k, err))
			continue
		}
		fields = append(fields, zap.Any(k, v))
	}
	ce.Write(fields...)
	return nil
}

// zapLevel maps logrus levels onto zap's. irmago's Info is demoted to Debug: some of it (session results of other
// protocols) carries attribute values, which must not be logged at Info. Panic and Fatal become Error: zap's own
// would end the process.
func zapLevel(l logrus.Level) zapcore.Level {
	switch l {
	case logrus.WarnLevel:
		return zapcore.WarnLevel
	case logrus.ErrorLevel, logrus.FatalLevel, logrus.PanicLevel:
		return zapcore.ErrorLevel
	default:
		return zapcore.DebugLevel
	}
}
