package caddyirma

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/go-redis/redis/v8"
	"github.com/privacybydesign/irmago/irma/server"
)

// How the gateway connects to Redis: the checks when its IRMA server starts,
// which name what is wrong, its own clients beside irmago's, and where
// go-redis's log lines go.

// dialAny connects to each address in turn until one accepts, and says
// what each that did not answered.
func dialAny(addrs []string) error {
	var errs []error
	for _, addr := range addrs {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// askSentinels asks the sentinels of s in turn, as the gateway will, which
// server is the master, and returns nil once one says. Its error says what
// each sentinel answered (a wrong sentinel_password, a master they do not
// monitor), where go-redis would say only that every sentinel is
// unreachable.
func askSentinels(ctx context.Context, s *server.RedisSettings) error {
	tlsConf, err := sentinelTLS(s)
	if err != nil {
		return err
	}
	var errs []error
	for _, addr := range s.SentinelAddrs {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr, Username: s.SentinelUsername, Password: s.SentinelPassword,
			TLSConfig: tlsConf, MaxRetries: -1, DialTimeout: 5 * time.Second})
		_, err := c.GetMasterAddrByName(ctx, s.SentinelMasterName).Result()
		c.Close()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, redis.Nil):
			err = fmt.Errorf("it monitors no master named %q (sentinel_master_name)", s.SentinelMasterName)
		case strings.HasPrefix(err.Error(), "WRONGPASS") || strings.HasPrefix(err.Error(), "NOAUTH"):
			err = fmt.Errorf("%w (sentinel_username, sentinel_password)", err)
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %w", addr, err))
	}
	return errors.Join(errs...)
}

// sentinelTLS is the TLS configuration of the connections to the
// sentinels, as irmago makes it for them and for the servers: none with
// disable_tls, else the CA of tls_ca_cert_file (or the system's) and the
// client certificate, if any.
func sentinelTLS(s *server.RedisSettings) (*tls.Config, error) {
	if s.DisableTLS {
		return nil, nil
	}
	conf := &tls.Config{}
	if s.TLSCertificateFile != "" {
		pem, err := os.ReadFile(s.TLSCertificateFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_cert_file: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		conf.RootCAs.AppendCertsFromPEM(pem)
	}
	if s.TLSClientCertificateFile != "" {
		cert, err := tls.LoadX509KeyPair(s.TLSClientCertificateFile, s.TLSClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_client_cert_file: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// ownClient is a client of the same Redis as c, made from the same
// settings s, with a connection pool of its own. With sentinels, it is a
// failover client of its own, which asks them for the master and follows
// a failover as c does; a copy of c's options would dial through c's
// sentinel watch, but only c drops its connections to a former master.
func ownClient(s *server.RedisSettings, c *redis.Client) *redis.Client {
	opt := c.Options() // the credentials, database and TLS as irmago made them
	if len(s.SentinelAddrs) == 0 {
		o := *opt
		return redis.NewClient(&o)
	}
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: s.SentinelMasterName, SentinelAddrs: s.SentinelAddrs,
		SentinelUsername: s.SentinelUsername, SentinelPassword: s.SentinelPassword,
		Username: opt.Username, Password: opt.Password, DB: opt.DB, TLSConfig: opt.TLSConfig,
	})
}

func init() { redis.SetLogger(goRedisLogs{}) }

// goRedisLogs passes what go-redis logs to Caddy's log, as irmago's lines
// are, with the field "source": "go-redis", where go-redis would print it
// on the standard error, outside the log: which master the sentinels name
// (at start, and after a failover) at info, the rest (a sentinel that does
// not answer) as a warning.
type goRedisLogs struct{}

func (goRedisLogs) Printf(_ context.Context, format string, v ...any) {
	l := irmaLogs.Logger().WithField("source", "go-redis")
	if strings.HasPrefix(format, "sentinel: new master=") || strings.HasPrefix(format, "sentinel: discovered new sentinel=") {
		l.Infof(format, v...)
		return
	}
	l.Warnf(format, v...)
}
