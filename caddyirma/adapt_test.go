package caddyirma

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

var update = flag.Bool("update", false, "rewrite the golden files of the adapt tests")

// TestCaddyfileAdapt keeps `caddy adapt` output stable: each file under
// testdata/caddyfile_adapt holds a Caddyfile, a line of dashes, and the
// JSON it adapts to.
func TestCaddyfileAdapt(t *testing.T) {
	eachGoldenCaddyfile(t, "testdata/caddyfile_adapt/*.caddyfiletest", func(t *testing.T, file, caddyfile, want string) {
		got, err := caddytest.Adapt(caddyfile)
		if err != nil {
			t.Fatalf("adapting: %v", err)
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, got, "", "\t"); err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(file, []byte(caddyfile+"\n----------\n"+pretty.String()+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		if strings.TrimSpace(pretty.String()) != strings.TrimSpace(want) {
			t.Errorf("adapted JSON differs (run go test -run TestCaddyfileAdapt -update to accept):\n%s", pretty.String())
		}
	})
}

// eachGoldenCaddyfile runs test on each file that pattern matches, in a
// subtest: a Caddyfile, a line of ten dashes, and what it gives (want).
func eachGoldenCaddyfile(t *testing.T, pattern string, test func(t *testing.T, file, caddyfile, want string)) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no files %s: %v", pattern, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, want, ok := strings.Cut(string(raw), "\n----------\n")
			if !ok {
				t.Fatalf("%s: no line of ten dashes after the Caddyfile", file)
			}
			test(t, file, caddyfile, want)
		})
	}
}

// TestReadmeCaddyfiles: the README's example Caddyfiles that an adapt test
// holds are the ones it shows, word for word, so that what it shows adapts.
func TestReadmeCaddyfiles(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"several_instances.caddyfiletest"} {
		raw, err := os.ReadFile(filepath.Join("testdata", "caddyfile_adapt", name))
		if err != nil {
			t.Fatal(err)
		}
		caddyfile, _, _ := strings.Cut(string(raw), "\n----------\n")
		if !bytes.Contains(readme, []byte("```caddyfile\n"+caddyfile+"\n```\n")) {
			t.Errorf("the README does not show the Caddyfile of %s as it is", name)
		}
	}
}
