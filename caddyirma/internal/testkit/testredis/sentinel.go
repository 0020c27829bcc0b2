package testredis

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// MasterName is the name under which the sentinels of StartSentinel
// monitor their master.
const MasterName = "caddy-irma"

// TLSFiles are the PEM files of Redis servers and sentinels that speak
// TLS only: a server certificate for 127.0.0.1 and its key, and the CA
// that issued it. Replication and the sentinels' own connections use TLS
// too; no client needs a certificate.
type TLSFiles struct {
	CACert, ServerCert, ServerKey string
}

// Sentinel is a Redis master with replicas, watched by three sentinels
// (quorum two), all on loopback ports, until the test ends. The sentinels
// take a master that does not answer for down only once the test lets
// them (DownAfter): a test can look at an outage first, for as long as it
// needs.
type Sentinel struct {
	// Master is the master, and Replicas the servers that replicate it;
	// WaitFailover makes the promoted replica the master, and leaves the
	// failed master out.
	Master    *Server
	Replicas  []*Server
	Sentinels []*Server

	t testing.TB
}

// Never is a time after which the sentinels of StartSentinel take a master
// that does not answer for down: longer than any test.
const Never = 10 * time.Minute

// SentinelOptions say how StartSentinel sets up the servers and sentinels.
type SentinelOptions struct {
	// Replicas is how many replicas the master has.
	Replicas int
	// TLS, if set, makes every server and sentinel speak TLS only.
	TLS *TLSFiles
	// Password, if set, is the password of the servers (requirepass), which
	// the replicas and the sentinels use.
	Password string
	// SentinelPassword, if set, is the password of the sentinels, which
	// they use with each other too.
	SentinelPassword string
}

// StartSentinel runs a master, its replicas, and three sentinels as o says,
// and returns once the sentinels know each other and every replica.
func StartSentinel(t testing.TB, o SentinelOptions) *Sentinel {
	t.Helper()
	tlsFiles, replicas := o.TLS, o.Replicas
	var clientTLS *tls.Config
	if tlsFiles != nil {
		pem, err := os.ReadFile(tlsFiles.CACert)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
		clientTLS = &tls.Config{RootCAs: roots}
	}
	// ports are the settings that put the server on a port: with TLS, the
	// TLS port only, and TLS for replication.
	ports := func(port int) []string {
		if tlsFiles == nil {
			return []string{"port " + strconv.Itoa(port)}
		}
		return []string{"port 0", "tls-port " + strconv.Itoa(port), "tls-cert-file " + tlsFiles.ServerCert,
			"tls-key-file " + tlsFiles.ServerKey, "tls-ca-cert-file " + tlsFiles.CACert, "tls-auth-clients no", "tls-replication yes"}
	}
	data := func(ready string, more func(port int) []string) *Server {
		srv := runServer(t, ready, clientTLS, o.Password, func(port int, dir string) []string {
			// A replica syncs at once, not after the five seconds that a
			// master waits by default for more replicas to sync with.
			lines := []string{"bind 127.0.0.1", `save ""`, "appendonly no", "dir " + dir, "repl-diskless-sync-delay 0"}
			if o.Password != "" {
				lines = append(lines, "requirepass "+o.Password, "masterauth "+o.Password)
			}
			return configFile(t, dir, append(append(lines, ports(port)...), more(port)...))
		})
		return srv
	}
	s := &Sentinel{t: t}
	s.Master = data("Ready to accept connections", func(int) []string { return nil })
	for range replicas {
		s.Replicas = append(s.Replicas, data("MASTER <-> REPLICA sync: Finished with success", func(int) []string {
			return []string{"replicaof 127.0.0.1 " + strconv.Itoa(s.Master.port)}
		}))
	}
	for range 3 {
		s.Sentinels = append(s.Sentinels, runServer(t, "+monitor master", clientTLS, o.SentinelPassword, func(port int, dir string) []string {
			lines := append([]string{"bind 127.0.0.1", "dir " + dir}, ports(port)...)
			if o.SentinelPassword != "" {
				lines = append(lines, "requirepass "+o.SentinelPassword, "sentinel sentinel-pass "+o.SentinelPassword)
			}
			lines = append(lines,
				fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", MasterName, s.Master.port),
				fmt.Sprintf("sentinel down-after-milliseconds %s %d", MasterName, Never.Milliseconds()),
				// A failover may follow another after twice this.
				fmt.Sprintf("sentinel failover-timeout %s 2000", MasterName))
			if o.Password != "" {
				lines = append(lines, fmt.Sprintf("sentinel auth-pass %s %s", MasterName, o.Password))
			}
			return append(configFile(t, dir, lines), "--sentinel")
		}))
	}
	// A sentinel learns of the others from their hellos, every two seconds.
	s.waitSentinels(30*time.Second, "the sentinels to know each other and the replicas", func(sentinel *Server) bool {
		m, err := masterInfo(sentinel)
		return err == nil && m["num-other-sentinels"] == "2" && m["num-slaves"] == strconv.Itoa(replicas)
	})
	return s
}

// configFile writes the lines into a configuration file in dir (a
// sentinel needs one, and rewrites it) and returns redis-server's
// arguments that load it.
func configFile(t testing.TB, dir string, lines []string) []string {
	t.Helper()
	f := filepath.Join(dir, "redis.conf")
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{f}
}

// Addrs are the addresses of the sentinels.
func (s *Sentinel) Addrs() []string {
	var addrs []string
	for _, sentinel := range s.Sentinels {
		addrs = append(addrs, sentinel.Addr)
	}
	return addrs
}

// Replicated waits until every replica has every write that the master
// acknowledged so far.
func (s *Sentinel) Replicated() {
	s.t.Helper()
	out, err := s.Master.Query(fmt.Sprintf("WAIT %d 4000", len(s.Replicas)))
	if err != nil || len(out) != 1 || out[0] != ":"+strconv.Itoa(len(s.Replicas)) {
		info, _ := s.Master.Query("INFO replication")
		s.t.Fatalf("waiting for the replicas: %q %v; the master says %q", out, err, info)
	}
}

// DownAfter makes the sentinels take a master that does not answer for d
// for down, and begin a failover.
func (s *Sentinel) DownAfter(d time.Duration) {
	s.t.Helper()
	for _, sentinel := range s.Sentinels {
		if out, err := sentinel.Query(fmt.Sprintf("SENTINEL SET %s down-after-milliseconds %d", MasterName, d.Milliseconds())); err != nil || !slices.Equal(out, []string{"+OK"}) {
			s.t.Fatalf("SENTINEL SET: %q %v", out, err)
		}
	}
}

// WaitFailover waits until every sentinel names one of the replicas as
// the master, and it says that it is, and every other replica replicates
// it. The failed master is left out from then on, and the sentinels take
// no master for down again until DownAfter: on a busy machine, a master
// that answers late might be.
func (s *Sentinel) WaitFailover() {
	s.t.Helper()
	defer s.DownAfter(Never)
	var master *Server
	s.waitSentinels(time.Minute, "a failover", func(sentinel *Server) bool {
		out, err := sentinel.Query("SENTINEL GET-MASTER-ADDR-BY-NAME " + MasterName)
		if err != nil || len(out) != 2 {
			return false
		}
		i := slices.IndexFunc(s.Replicas, func(r *Server) bool { return r.Addr == out[0]+":"+out[1] })
		if i < 0 {
			return false
		}
		role, err := s.Replicas[i].Query("ROLE")
		master = s.Replicas[i]
		return err == nil && len(role) > 0 && role[0] == "master"
	})
	var replicas []*Server
	for _, r := range s.Replicas {
		if r != master {
			replicas = append(replicas, r)
		}
	}
	s.Master, s.Replicas = master, replicas
	// The sentinels have the other replicas replicate the new master; a
	// write is on them once they do.
	deadline := time.Now().Add(time.Minute)
	for {
		role, err := master.Query("ROLE") // master, offset, then each replica's host, port and offset
		if err == nil && len(role) == 2+3*len(replicas) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the replicas do not replicate the new master: %q %v", role, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSentinels waits, up to within, until ok holds for every sentinel,
// and fails the test if it does not.
func (s *Sentinel) waitSentinels(within time.Duration, what string, ok func(sentinel *Server) bool) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		all := true
		for _, sentinel := range s.Sentinels {
			all = all && ok(sentinel)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// masterInfo is what a sentinel says of the master it monitors.
func masterInfo(sentinel *Server) (map[string]string, error) {
	out, err := sentinel.Query("SENTINEL MASTER " + MasterName)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for i := 0; i+1 < len(out); i += 2 {
		m[out[i]] = out[i+1]
	}
	return m, nil
}
