package benchreport

import (
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for p, want := range map[float64]float64{0.9: 9, 0.5: 5, 1: 10, 0.01: 1} {
		if got := Percentile(xs, p); got != want {
			t.Errorf("Percentile(%v) = %v, want %v", p, got, want)
		}
	}
	if Percentile(nil, 0.9) != 0 {
		t.Error("a percentile of nothing")
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(OutEnv, dir)
	if _, err := Write(Result{Name: "Bad Name"}); err == nil {
		t.Error("a name with spaces was written")
	}
	want := Result{Name: "unlock-memory", Unit: "ms", Samples: []float64{30, 10, 20}, Goal: 100, AtMost: true}
	if _, err := Write(want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDir(dir)
	if err != nil || len(got) != 1 {
		t.Fatalf("ReadDir: %v, %d results", err, len(got))
	}
	if got[0].Median != 20 || !got[0].Met() {
		t.Errorf("median %v, met %v; want 20, true", got[0].Median, got[0].Met())
	}
	got[0].Median = 101
	if got[0].Met() {
		t.Error("101 ms met an at-most-100 goal")
	}
}
