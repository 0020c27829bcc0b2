package logbridge

import (
	"errors"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestLogBridge(t *testing.T) {
	b := New(false)
	//lint:ignore SA4006 staticcheck takes logrus's Fatal to end the process; the bridge makes it return
	core, logs := observer.New(zapcore.DebugLevel)
	b.SetTarget(zap.New(core))

	b.logger.WithField("session", "tok").Info("session started")
	b.logger.WithError(errors.New("boom")).Warn("careful")
	b.logger.WithField("url", "/session/SlrYaICGjSIyCND3lLUM/frontend/status").Error("failed")
	// Debug and trace carry attribute values in irmago: never forwarded,
	// even though the zap logger would take them.
	b.logger.Debug("Session request: {\"attributes\": \"secret\"}")
	b.logger.Trace("body secret")
	// Fatal must not end the process that serves other sites.
	b.logger.Fatal("fatal")

	entries := logs.AllUntimed()
	want := []struct {
		level zapcore.Level
		msg   string
	}{
		{zapcore.InfoLevel, "session started"},
		{zapcore.WarnLevel, "careful"},
		{zapcore.ErrorLevel, "failed"},
		{zapcore.ErrorLevel, "fatal"},
	}
	if len(entries) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(entries), len(want), entries)
	}
	for i, w := range want {
		if entries[i].Level != w.level || entries[i].Message != w.msg {
			t.Errorf("entry %d: %s %q, want %s %q", i, entries[i].Level, entries[i].Message, w.level, w.msg)
		}
	}
	// Session tokens are secrets: the log gets a fingerprint.
	if got := entries[0].ContextMap()["session"]; got != Fingerprint("tok") || got == "tok" {
		t.Errorf("field session = %v", got)
	}
	if got := entries[2].ContextMap()["url"]; got != "/session/"+Fingerprint("SlrYaICGjSIyCND3lLUM")+"/frontend/status" {
		t.Errorf("field url = %v: the client token must not be logged", got)
	}
	if got := entries[1].ContextMap()["error"]; got != "boom" {
		t.Errorf("field error = %v", got)
	}

	// A new target takes over; the old one hears nothing more.
	core2, logs2 := observer.New(zapcore.InfoLevel)
	b.SetTarget(zap.New(core2))
	b.logger.Info("to the new logger")
	if logs.Len() != len(want) || logs2.Len() != 1 {
		t.Errorf("after setTarget: old %d, new %d entries", logs.Len(), logs2.Len())
	}
}

func TestDemoteInfo(t *testing.T) {
	b := New(true)
	core, logs := observer.New(zapcore.DebugLevel)
	l := zap.New(core)
	b.SetTarget(l)
	b.logger.Info("value alice@example.com")
	b.logger.Warn("careful")
	entries := logs.AllUntimed()
	if len(entries) != 2 || entries[0].Level != zapcore.DebugLevel || entries[1].Level != zapcore.WarnLevel {
		t.Fatalf("entries %+v", entries)
	}
	b.Release(zap.NewNop()) // not the target: no effect
	b.logger.Warn("still here")
	b.Release(l)
	b.logger.Warn("after release")
	if logs.Len() != 3 {
		t.Errorf("got %d entries, want 3: release of another logger must not silence, release of the target must", logs.Len())
	}
}
