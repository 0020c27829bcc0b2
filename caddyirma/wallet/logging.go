//go:build cgo

package wallet

import (
	"github.com/privacybydesign/irmago/irma"
	"go.uber.org/zap"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/logbridge"
)

// irmagoLogs is what irmago's wallet code logs to. irmago keeps its logger in package-wide variables (irma.Logger,
// and copies of it taken by irma.SetLogger), so there is one per process: Open points it at the bridge, and the
// bridge forwards to the logger of the wallet opened last. A process that also runs an IRMA server (a test) shares
// the variable with it: whichever was configured last receives both. Info is demoted to Debug: some of what
// irmago's wallet code logs at Info (session results) carries attribute values.
var irmagoLogs = logbridge.New(true)

// installLogger makes irmago log through the bridge, to target.
func installLogger(target *zap.Logger) {
	irmagoLogs.SetTarget(target)
	if irma.Logger != irmagoLogs.Logger() {
		irma.SetLogger(irmagoLogs.Logger())
	}
}
