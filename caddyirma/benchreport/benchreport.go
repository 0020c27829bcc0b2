// Package benchreport is the format of the published benchmark results
// (make bench): each benchmark run writes one Result as JSON into the
// directory named by IRMA_BENCH_OUT, and the report command reads them all
// back to write results.json and draw the chart that the README shows.
package benchreport

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// OutEnv names the directory that benchmarks write their results into; when
// it is unset they write none (a benchmark run by hand only reports).
const OutEnv = "IRMA_BENCH_OUT"

// Result is what one benchmark measured.
type Result struct {
	// Name identifies the benchmark: "load", "unlock-memory",
	// "unlock-redis", "login-cost".
	Name string `json:"name"`
	// Title is what the chart calls it, such as "unlock (memory store)".
	Title string `json:"title"`
	// Metric says what Median and Samples measure, such as "ms from the
	// wallet's last response to the browser's request upstream".
	Metric string `json:"metric"`
	// Unit is the unit of Median, Samples and Goal: "ms", "ratio", ...
	Unit string `json:"unit"`
	// Median of Samples.
	Median float64 `json:"median"`
	// Samples are the single measurements (one per run or round).
	Samples []float64 `json:"samples"`
	// Goal is the target for Median; AtMost says whether Median must be at
	// most (true) or at least (false) the goal.
	Goal   float64 `json:"goal"`
	AtMost bool    `json:"at_most"`
	// Figures holds other named numbers worth reporting beside the median
	// (each side of a ratio, a CPU breakdown, ...), in Unit or as the name
	// says.
	Figures map[string]float64 `json:"figures,omitempty"`
	// Notes say how it was measured.
	Notes string `json:"notes,omitempty"`
}

// Met says whether the median meets the goal.
func (r Result) Met() bool {
	if r.AtMost {
		return r.Median <= r.Goal
	}
	return r.Median >= r.Goal
}

// Median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Percentile returns the p-th quantile of xs (0 < p <= 1), by nearest
// rank; 0 for none.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Write writes r as <name>.json into the directory that IRMA_BENCH_OUT
// names, filling in Median from Samples; without IRMA_BENCH_OUT it writes
// nothing. It returns the file written, if any.
func Write(r Result) (string, error) {
	dir := os.Getenv(OutEnv)
	if dir == "" {
		return "", nil
	}
	if !validName.MatchString(r.Name) {
		return "", fmt.Errorf("bench result name %q: want lowercase letters, digits and dashes", r.Name)
	}
	r.Median = Median(r.Samples)
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("bench result %s: %w", r.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench result %s: %w", r.Name, err)
	}
	path := filepath.Join(dir, r.Name+".json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("bench result %s: %w", r.Name, err)
	}
	return path, nil
}

// ReadDir reads every result in dir, sorted by name.
func ReadDir(dir string) ([]Result, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("bench result %s: %w", p, err)
		}
		if r.Name == "" {
			continue // not a result (results.json, say)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Result) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
