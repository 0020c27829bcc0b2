package benchreport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Report is what make bench publishes: the results of one run, and the
// machine they ran on.
type Report struct {
	Machine Machine  `json:"machine"`
	Results []Result `json:"results"`
}

// Machine describes where a run took place.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	MemGB  int    `json:"mem_gb,omitempty"`
	OS     string `json:"os"`
	Go     string `json:"go"`
	Commit string `json:"commit,omitempty"`
	Date   string `json:"date"`
}

// String is a one-line description, as the chart's footer shows it.
func (m Machine) String() string {
	s := fmt.Sprintf("%s, %d cores", m.CPU, m.Cores)
	if m.MemGB > 0 {
		s += fmt.Sprintf(", %d GB", m.MemGB)
	}
	s += fmt.Sprintf("; %s, %s; %s", m.OS, m.Go, m.Date)
	if m.Commit != "" {
		s += ", commit " + m.Commit
	}
	return s
}

// ThisMachine describes the machine it runs on, now.
func ThisMachine(now time.Time) Machine {
	m := Machine{CPU: "unknown CPU", Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		Go: runtime.Version(), Date: now.UTC().Format("2006-01-02")}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.CPU = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		var kb int
		if _, err := fmt.Sscanf(v, "%d kB", &kb); err == nil {
			m.MemGB = (kb + 512*1024) / (1024 * 1024)
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// procField returns the value of the first "name: value" line of a /proc
// file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// WriteJSON writes the report as indented JSON to path.
func (r Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Markdown is the report as a Markdown table, with the machine below.
func Markdown(r Report) string {
	var b strings.Builder
	b.WriteString("| benchmark | median | goal | met | samples |\n|---|---|---|---|---|\n")
	for _, res := range r.Results {
		cmp := "≥"
		if res.AtMost {
			cmp = "≤"
		}
		met := "yes"
		if !res.Met() {
			met = "no"
		}
		fmt.Fprintf(&b, "| %s | %s | %s %s | %s | %d |\n", res.Title, value(res.Median, res.Unit), cmp, value(res.Goal, res.Unit), met, len(res.Samples))
	}
	fmt.Fprintf(&b, "\nMachine: %s\n", r.Machine)
	return b.String()
}
