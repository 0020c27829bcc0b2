// Package testpostgres runs a real PostgreSQL server for a test, in a
// temporary directory, listening on a unix socket there only (no TCP port),
// until the test ends. It uses Debian's postgresql package (PostgreSQL 15:
// initdb and postgres in /usr/lib/postgresql/15/bin, or on the PATH).
// PostgreSQL refuses to run as root: as root, it runs the server as the
// postgres user (which Debian's package creates) with runuser.
package testpostgres

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binDir is where Debian's postgresql-15 keeps initdb and postgres.
const binDir = "/usr/lib/postgresql/15/bin"

// User is the database superuser that Start creates; it needs no password
// over the socket (trust).
const User = "caddy"

// Start runs PostgreSQL until the test ends and returns a connection string
// for its "postgres" database, as irmago's revocation_db_str takes it:
// host is the socket's directory.
func Start(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "testpostgres-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	asUser := serverUser(t, dir)
	data := filepath.Join(dir, "data")
	initdb := command(asUser, bin("initdb"), "-D", data, "-A", "trust", "-U", User, "-E", "UTF8", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("testpostgres: initdb: %v\n%s", err, out)
	}
	srv := command(asUser, bin("postgres"), "-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "fsync=off",
		"-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		t.Fatalf("testpostgres: postgres: %v", err)
	}
	t.Cleanup(func() {
		// SIGINT: "fast shutdown", which ends the server's own children.
		_ = syscall.Kill(-srv.Process.Pid, syscall.SIGINT)
		_ = srv.Wait()
	})
	ready := make(chan struct{})
	var logged strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if logged.Len() < 8<<10 {
				logged.WriteString(line + "\n")
			}
			if strings.Contains(line, "database system is ready to accept connections") {
				close(ready)
				break
			}
		}
		_ = drain(sc)
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("testpostgres: postgres did not start in 30s:\n%s", logged.String())
	}
	return fmt.Sprintf("host=%s port=5432 user=%s dbname=postgres sslmode=disable", dir, User)
}

// drain reads what the server still logs, so that it never blocks on a
// full pipe.
func drain(sc *bufio.Scanner) error {
	for sc.Scan() {
	}
	return sc.Err()
}

// serverUser returns the user to run PostgreSQL as: nil for the current
// one, or, as root, the postgres user, who is given dir.
func serverUser(t testing.TB, dir string) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("testpostgres: running as root, and there is no postgres user to run PostgreSQL as (apt-get install postgresql): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return u
}

// command runs name with args, as asUser if not nil.
func command(asUser *user.User, name string, args ...string) *exec.Cmd {
	if asUser == nil {
		return exec.Command(name, args...)
	}
	return exec.Command("runuser", append([]string{"-u", asUser.Username, "--", name}, args...)...)
}

// bin finds a PostgreSQL program: in Debian's directory for version 15,
// else for another version, else on the PATH.
func bin(name string) string {
	if p := filepath.Join(binDir, name); fileExists(p) {
		return p
	}
	if found, _ := filepath.Glob(filepath.Join("/usr/lib/postgresql", "*", "bin", name)); len(found) > 0 {
		return found[len(found)-1]
	}
	return name
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
