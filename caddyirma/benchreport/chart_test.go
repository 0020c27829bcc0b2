package benchreport

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func testReport() Report {
	return Report{
		Machine: Machine{CPU: "Test CPU <x>", Cores: 2, OS: "linux/amd64", Go: "go1.26", Date: "2026-11-30"},
		Results: []Result{
			{Name: "unlock-memory", Title: "unlock (memory store)", Metric: "ms & more", Unit: "ms",
				Samples: []float64{9, 10, 12}, Median: 10, Goal: 100, AtMost: true},
			{Name: "load", Title: "cost per request", Metric: "irma_auth / reverse_proxy", Unit: "ratio",
				Samples: []float64{0.9, 0.92}, Median: 0.91, Goal: 0.95},
		},
	}
}

func TestSVG(t *testing.T) {
	var b bytes.Buffer
	if err := SVG(&b, testReport()); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML, every text escaped.
	dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, b.String())
		}
	}
	svg := b.String()
	for _, want := range []string{"unlock (memory store)", "ms &amp; more", "Test CPU &lt;x&gt;", "goal ≤ 100.0 ms", "goal ≥ 0.95",
		"10.0 ms", "0.91", "meets the goal", "misses the goal", `fill="#2e8b57"`, `fill="#e07b00"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("the chart lacks %q", want)
		}
	}
	if n := strings.Count(svg, "<circle"); n != 5 {
		t.Errorf("%d sample dots, want 5", n)
	}
}

func TestMarkdown(t *testing.T) {
	md := Markdown(testReport())
	for _, want := range []string{"| unlock (memory store) | 10.0 ms | ≤ 100.0 ms | yes | 3 |", "| cost per request | 0.91 | ≥ 0.95 | no | 2 |", "Machine: Test CPU <x>, 2 cores"} {
		if !strings.Contains(md, want) {
			t.Errorf("the table lacks %q:\n%s", want, md)
		}
	}
}
