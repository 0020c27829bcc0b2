package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a program the tests start may take to say
// that it is ready: generous, for a busy machine; it is a bound, not a
// measurement.
const startTimeout = time.Minute

// process is a program that a test runs as its own process, with its output
// (stdout and stderr together) kept for the test's log.
type process struct {
	name    string
	mu      sync.Mutex
	out     strings.Builder
	exited  chan struct{} // closed when the process has exited
	waitErr error         // set before exited is closed
	drained chan struct{} // closed when all its output has been read
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startProcess starts cmd, stops it when the test ends, and waits until a
// line of its output matches ready, whose first submatch it returns (the
// address a program listens on, for instance). Programs that bind port 0
// and print the address they got cannot race another for a port. Output
// goes to the test's log if the test fails.
func startProcess(t testing.TB, name string, cmd *exec.Cmd, ready *regexp.Regexp) (string, *process) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	pw.Close() // the child has its own copy; EOF comes when it exits

	p := &process{name: name, exited: make(chan struct{}), drained: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		defer close(p.drained)
		defer pr.Close()
		r := bufio.NewReader(pr)
		for matched := false; ; {
			line, err := r.ReadString('\n')
			p.mu.Lock()
			p.out.WriteString(line)
			p.mu.Unlock()
			if !matched {
				if m := ready.FindStringSubmatch(line); m != nil {
					matched = true
					found <- m[len(m)-1]
				}
			}
			if err != nil {
				if err != io.EOF {
					p.mu.Lock()
					p.out.WriteString("\n(reading the output: " + err.Error() + ")\n")
					p.mu.Unlock()
				}
				return
			}
		}
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()

	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				t.Errorf("%s (pid %d) did not exit after SIGKILL", name, cmd.Process.Pid)
			}
			t.Errorf("%s did not stop on SIGTERM within 10s", name)
		}
		select {
		case <-p.drained:
		case <-time.After(5 * time.Second):
		}
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, p.output())
		}
	})

	select {
	case got := <-found:
		return got, p
	case <-p.exited:
		select {
		case <-p.drained:
		case <-time.After(5 * time.Second):
		}
		t.Fatalf("%s exited before it was ready (%v):\n%s", name, p.waitErr, p.output())
	case <-time.After(startTimeout):
		t.Fatalf("%s did not say it was ready (%s) within %s:\n%s", name, ready, startTimeout, p.output())
	}
	return "", nil
}

// builds holds the binaries that buildGo made, by package and
// environment: each is built once per test binary (linking the Caddy binary
// takes seconds, more on a busy machine), into builds.dir, which TestMain
// removes at the end.
var builds = struct {
	sync.Mutex
	dir  string
	made map[string]*build
}{made: map[string]*build{}}

// build is one binary that buildGo makes: done is closed once bin or err
// is set.
type build struct {
	done chan struct{}
	bin  string
	err  error
}

// buildGo builds the Go command in pkg (relative to the repository) and
// returns the binary's path; a later call with the same pkg and env gets
// the same binary. env is added to the build's environment (CGO_ENABLED=0,
// for instance). Tests only run the binary: none may change it.
func buildGo(t testing.TB, pkg string, env ...string) string {
	t.Helper()
	return cachedBuild(t, pkg+"\x00"+strings.Join(env, "\x00"), func(dir string, n int) (string, error) {
		return goBuild(t, dir, n, pkg, env)
	})
}

// installGo installs the command at module@version from the Go module
// proxy (`go install`, GOBIN a directory of builds.dir) once per test
// binary, and returns the binary's path: irmago's own programs, to compare
// the gateway with, never committed.
func installGo(t testing.TB, module string) string {
	t.Helper()
	return cachedBuild(t, "install\x00"+module, func(dir string, n int) (string, error) {
		bin := filepath.Join(dir, strconv.Itoa(n))
		install := exec.Command("go", "install", module)
		install.Env = append(os.Environ(), "GOBIN="+bin)
		if out, err := install.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go install %s: %w\n%s", module, err, out)
		}
		name, _, _ := strings.Cut(filepath.Base(module), "@")
		return filepath.Join(bin, name), nil
	})
}

// cachedBuild returns the binary that produce builds into directory n of
// builds.dir, once per key and test binary.
func cachedBuild(t testing.TB, key string, produce func(dir string, n int) (string, error)) string {
	t.Helper()
	builds.Lock()
	b, built := builds.made[key]
	n := len(builds.made)
	if !built {
		b = &build{done: make(chan struct{})}
		builds.made[key] = b
		if builds.dir == "" {
			builds.dir, b.err = os.MkdirTemp("", "caddy-irma-e2e-bin-")
		}
	}
	dir := builds.dir
	builds.Unlock()
	if !built {
		if b.err == nil {
			b.bin, b.err = produce(dir, n)
		}
		close(b.done)
	}
	<-b.done
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// goBuild builds pkg with env into its own directory n under dir.
func goBuild(t testing.TB, dir string, n int, pkg string, env []string) (string, error) {
	t.Helper()
	bin := filepath.Join(dir, strconv.Itoa(n), filepath.Base(pkg))
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	build := exec.Command("go", "build", "-o", bin, "./"+pkg)
	build.Dir = repoRoot(t)
	build.Env = append(os.Environ(), env...)
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./%s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// TestMain removes the binaries that the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
	os.Exit(code)
}

// repoRoot is the repository's directory (the tests run in caddyirma/e2e).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// yiviBinary is irmago v1.3.0's `yivi` command (`irma server`, `irma
// session`), installed once per test binary.
func yiviBinary(t testing.TB) string {
	t.Helper()
	return installGo(t, "github.com/privacybydesign/irmago/yivi@v1.3.0")
}
