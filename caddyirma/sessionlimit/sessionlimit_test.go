package sessionlimit_test

import (
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/sessionlimit"
	"github.com/caddy-irma/caddy-irma/caddyirma/sessionlimit/limittest"
)

func TestMemory(t *testing.T) {
	limittest.Run(t, func(t *testing.T, b sessionlimit.Bounds, now func() time.Time, _ string) sessionlimit.Limiter {
		return &sessionlimit.Memory{Bounds: b, MaxClients: 1000, Now: now}
	})
}
