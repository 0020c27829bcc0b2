package caddyirma

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "app.localhost": true, "127.0.0.1": true, "127.9.9.9": true, "::1": true,
		"": false, "localhost.example": false, "10.0.0.1": false, "redis.example": false, "::": false, "0.0.0.0": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestGoRedisLogs: what go-redis logs reaches Caddy's log, not the
// standard error: the master the sentinels name at info, the rest as a
// warning.
func TestGoRedisLogs(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	target := zap.New(core)
	prev := irmaLogs.Swap(target)
	defer irmaLogs.SetTarget(prev)
	var l goRedisLogs
	l.Printf(context.Background(), "sentinel: new master=%q addr=%q", "irma", "10.0.0.2:6379")
	l.Printf(context.Background(), "sentinel: GetMasterAddrByName master=%q failed: %s", "irma", "dial tcp: connection refused")
	got := logs.All()
	if len(got) != 2 || got[0].Level != zapcore.InfoLevel || got[0].Message != `sentinel: new master="irma" addr="10.0.0.2:6379"` ||
		got[1].Level != zapcore.WarnLevel || got[1].ContextMap()["source"] != "go-redis" {
		t.Errorf("logged %+v", got)
	}
}
