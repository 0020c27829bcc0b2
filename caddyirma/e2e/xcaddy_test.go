package e2e

import (
	"debug/buildinfo"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// pluginModule is what `xcaddy build --with` names to get caddy-irma.
const pluginModule = "github.com/caddy-irma/caddy-irma"

// TestXcaddy follows the README's Install section with this checkout as the
// plugin: it installs xcaddy as the README says, builds the Caddy version
// that go.mod requires with it (no cgo), and checks that the binary lists
// every Caddy module the repository registers, the same as cmd/caddy's, and
// reports that Caddy version. The module is not fetched: the build replaces
// it with the checkout at a version (v0.0.0), which go takes whatever the
// module proxy says of the module; without a version, go needs the proxy's
// list of its versions, which a proxy without the module may refuse (the
// one here answers 403). GOVCS=*:off: only the module proxy, never git.
func TestXcaddy(t *testing.T) {
	root := repoRoot(t)
	caddyVersion := requiredVersion(t, "github.com/caddyserver/caddy/v2")
	install := strings.Split(strings.TrimSpace(readmeBlock(t, "install:")), "\n")
	build := "xcaddy build " + caddyVersion + " --with " + pluginModule
	const list = "./caddy list-modules | grep irma"
	if len(install) != 3 || !strings.HasPrefix(install[0], "go install github.com/caddyserver/xcaddy/cmd/xcaddy@v") ||
		install[1] != build || install[2] != list {
		t.Fatalf("the README's install block is not\n\tgo install github.com/caddyserver/xcaddy/cmd/xcaddy@<version>\n\t%s\n\t%s\nbut:\n%s",
			build, list, strings.Join(install, "\n"))
	}

	xcaddy := installGo(t, strings.TrimPrefix(install[0], "go install "))
	work := t.TempDir()
	cmd := exec.Command(xcaddy, "build", caddyVersion, "--with", pluginModule+"@v0.0.0="+root)
	cmd.Dir = work
	// XCADDY_GO_BUILD_FLAGS replaces xcaddy's -trimpath and build tags,
	// which would share nothing with the builds of the other tests: so the
	// packages that TestBinary compiled (CGO_ENABLED=0) are reused, and a
	// cold build costs seconds rather than minutes (binary_test.go runs
	// first). What is built is the same; only xcaddy's -s goes, which its
	// flags variable cannot pass to go get, where it lands too.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOVCS=*:off", "TMPDIR="+work, "XCADDY_GO_BUILD_FLAGS=-ldflags=-w")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	t.Logf("xcaddy build: %s", time.Since(start).Round(100*time.Millisecond))
	bin := filepath.Join(work, "caddy")

	t.Run("no cgo", func(t *testing.T) {
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range info.Settings {
			if s.Key == "CGO_ENABLED" && s.Value != "0" {
				t.Errorf("built with CGO_ENABLED=%s", s.Value)
			}
		}
	})
	t.Run("version", func(t *testing.T) {
		out, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), caddyVersion+" ") {
			t.Errorf("caddy version: %v: %s, want %s", err, out, caddyVersion)
		}
	})
	t.Run("modules", func(t *testing.T) {
		grep := exec.Command("bash", "-euo", "pipefail", "-c", list)
		grep.Dir = work
		out, err := grep.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", list, err, out)
		}
		listed := strings.Fields(string(out))
		slices.Sort(listed)
		ours := nonStandardModules(t, buildGo(t, "cmd/caddy", "CGO_ENABLED=0"))
		if n := registeredModules(t, root); len(ours) != n {
			t.Errorf("cmd/caddy lists %d modules of ours (%s), the sources register %d: is a package missing from plugin.go?",
				len(ours), strings.Join(ours, " "), n)
		}
		if !slices.Equal(listed, ours) {
			t.Errorf("%s lists\n\t%s\ncmd/caddy\n\t%s", list, strings.Join(listed, " "), strings.Join(ours, " "))
		}
		section := readmeSection(t, "## Install\n")
		for _, id := range ours {
			if !strings.Contains(section, "`"+id+"`") {
				t.Errorf("the README's Install section does not name module %s", id)
			}
		}
		if !strings.Contains(section, "tested with Caddy "+caddyVersion+",") {
			t.Errorf("the README's Install section does not say it is tested with Caddy %s", caddyVersion)
		}
	})
	t.Run("caddy irma", func(t *testing.T) {
		if out, err := exec.Command(bin, "irma", "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "demo-scheme") {
			t.Errorf("caddy irma --help: %v: %s", err, out)
		}
	})
}

// TestContainerRecipe holds examples/container/Dockerfile to the README's
// Install section, which shows it, and to go.mod: Caddy's builder and
// runtime images at the Caddy version go.mod requires, and the xcaddy
// command of the Install section (the builder image's CADDY_VERSION gives
// the version). No container runtime is needed: TestXcaddy builds the same.
func TestContainerRecipe(t *testing.T) {
	version := strings.TrimPrefix(requiredVersion(t, "github.com/caddyserver/caddy/v2"), "v")
	file, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "container", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if shown := readmeBlock(t, "install container:"); shown != string(file) {
		t.Errorf("the README shows\n%s\nexamples/container/Dockerfile is\n%s", shown, file)
	}
	var instructions []string
	for _, line := range strings.Split(string(file), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			instructions = append(instructions, line)
		}
	}
	want := []string{
		"FROM caddy:" + version + "-builder AS builder",
		"RUN xcaddy build --with " + pluginModule,
		"FROM caddy:" + version,
		"COPY --from=builder /usr/bin/caddy /usr/bin/caddy",
	}
	if !slices.Equal(instructions, want) {
		t.Errorf("examples/container/Dockerfile:\n\t%s\nwant\n\t%s", strings.Join(instructions, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// readmeSection is the README from the line heading, which must be
// there, to the next heading of the same level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, found := strings.Cut(string(readme), "\n"+heading)
	if !found {
		t.Fatalf("the README has no %q", heading)
	}
	level, _, _ := strings.Cut(heading, " ")
	section, _, _ = strings.Cut(section, "\n"+level+" ")
	return section
}

// requiredVersion is the version of module that go.mod requires.
func requiredVersion(t *testing.T, module string) string {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + `\s+(v\S+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatalf("go.mod requires no %s", module)
	}
	return string(m[1])
}

// nonStandardModules are the modules that bin lists beside Caddy's
// standard ones, sorted.
func nonStandardModules(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command(bin, "list-modules", "--skip-standard").CombinedOutput()
	if err != nil {
		t.Fatalf("caddy list-modules --skip-standard: %v: %s", err, out)
	}
	var ids []string
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && !strings.ContainsAny(line, " :") {
			ids = append(ids, line)
		}
	}
	slices.Sort(ids)
	return ids
}

// registeredModules counts the caddy.RegisterModule calls in the
// repository's Go sources, tests left out.
func registeredModules(t *testing.T, root string) int {
	t.Helper()
	n := 0
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(node ast.Node) bool {
			if call, ok := node.(*ast.CallExpr); ok {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "RegisterModule" {
					if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "caddy" {
						n++
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
