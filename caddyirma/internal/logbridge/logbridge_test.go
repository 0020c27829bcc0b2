package logbridge

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
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

// TestRedactsSecrets: irmago's lines reach the log without the tokens they
// name in their texts, the message a visitor signs, or revocation keys.
func TestRedactsSecrets(t *testing.T) {
	b := New(false)
	core, logs := observer.New(zapcore.InfoLevel)
	b.SetTarget(zap.New(core))
	const token = "JmmIykkK4Ob2RJ5IOdkT"
	b.logger.WithError(fmt.Errorf("session result requested of unknown session with clientToken %s", token)).Warn("Session middleware: unknown session")
	b.logger.Info(`Session request (purged of attribute values): {"validity":120,"request":{"@context":"https://irma.app/ld/request/signature/v2","message":"I, \"alice@example.com\", owe Bob 100","disclose":[[["a.b.c.d"]]]}}`)
	b.logger.Infof("unknown session with requestorToken=%s", token)
	b.logger.Info(`Session request (purged of attribute values): {"validity":120,"request":{"@context":"https://irma.app/ld/request/issuance/v2","credentials":[{"credential":"a.b.c","attributes":null,"revocationKey":"alice-\"pass"}]}}`)
	b.logger.Info(`Session request (purged of attribute values): {"nextSession":{"url":"http://nsuser:nsSECRETpw@10.0.0.9:8099/next"},"request":{}}`)
	b.logger.WithField("callbackUrl", "https://cbuser:cbSECRET@app.example/cb").WithError(errors.New(`Post "http://u:errSECRET@10.0.0.9/next": refused`)).Warn("failed to POST session result to callback URL")
	var all strings.Builder
	for _, e := range logs.AllUntimed() {
		fmt.Fprintf(&all, "%s %v\n", e.Message, e.ContextMap())
	}
	for _, secret := range []string{token, "alice@example.com", "owe Bob", "alice-", "nsuser", "nsSECRETpw", "cbSECRET", "errSECRET"} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("the log holds %q:\n%s", secret, all.String())
		}
	}
	for _, kept := range []string{Fingerprint(token), `"disclose":[[["a.b.c.d"]]]`, "signature/v2", "(user info not logged)@10.0.0.9:8099/next", "(user info not logged)@app.example/cb"} {
		if !strings.Contains(all.String(), kept) {
			t.Errorf("the log lost %q:\n%s", kept, all.String())
		}
	}
}

// TestLevelFollowsTarget: irmago builds no entry that the target drops
// (logrus's level is the target's), and never one below Info, whatever the
// target takes.
func TestLevelFollowsTarget(t *testing.T) {
	for _, tc := range []struct {
		demote bool
		target zapcore.Level
		want   logrus.Level
	}{
		{false, zapcore.DebugLevel, logrus.InfoLevel},
		{false, zapcore.InfoLevel, logrus.InfoLevel},
		{false, zapcore.WarnLevel, logrus.WarnLevel},
		{false, zapcore.ErrorLevel, logrus.ErrorLevel},
		{true, zapcore.DebugLevel, logrus.InfoLevel},
		{true, zapcore.InfoLevel, logrus.WarnLevel},
	} {
		b := New(tc.demote)
		if got := b.logger.GetLevel(); got != logrus.ErrorLevel {
			t.Errorf("without a target: %s", got)
		}
		core, logs := observer.New(tc.target)
		l := zap.New(core)
		b.SetTarget(l)
		if got := b.logger.GetLevel(); got != tc.want {
			t.Errorf("demote %v, target %s: logrus at %s, want %s", tc.demote, tc.target, got, tc.want)
		}
		b.logger.Info("info")
		b.logger.Warn("warn")
		if want := map[bool]int{true: 2, false: 1}[tc.want == logrus.InfoLevel]; tc.target <= zapcore.WarnLevel && logs.Len() != want {
			t.Errorf("demote %v, target %s: %d entries, want %d", tc.demote, tc.target, logs.Len(), want)
		}
		b.Release(l)
		if got := b.logger.GetLevel(); got != logrus.ErrorLevel {
			t.Errorf("released: %s", got)
		}
	}
}
