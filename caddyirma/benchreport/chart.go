package benchreport

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// The chart's geometry, in SVG user units.
const (
	chartWidth = 800
	rowHeight  = 78
	plotLeft   = 300
	plotRight  = 690
	headHeight = 48
	footHeight = 54
)

// SVG draws the report as a chart: one row per result, with its samples as
// dots, its median as a bar (green if it meets the goal, orange if not)
// and its goal as a dashed line, each row on a scale of its own; the
// machine below.
func SVG(w io.Writer, r Report) error {
	var b bytes.Buffer
	height := headHeight + rowHeight*len(r.Results) + footHeight
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, height)
	text(&b, 16, 30, "font-size=\"18\" font-weight=\"bold\"", "caddy-irma: make bench")
	for i, res := range r.Results {
		row(&b, headHeight+i*rowHeight, res)
	}
	y := headHeight + rowHeight*len(r.Results) + 22
	text(&b, 16, y, `fill="#555"`, "Bars: medians; dots: single runs or rounds; dashed: the goal. Each row has its own scale.")
	text(&b, 16, y+20, `fill="#555"`, "Machine: "+r.Machine.String())
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// row draws one result at vertical offset top.
func row(b *bytes.Buffer, top int, res Result) {
	text(b, 16, top+26, `font-weight="bold"`, res.Title)
	text(b, 16, top+44, `fill="#555" font-size="11"`, clip(res.Metric, 48))
	top += 14
	scale := scaleMax(res)
	x := func(v float64) float64 { return plotLeft + (plotRight-plotLeft)*v/scale }
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="18" fill="#f0f0f0"/>`+"\n", plotLeft, top, plotRight-plotLeft)
	color := "#2e8b57"
	if !res.Met() {
		color = "#e07b00"
	}
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%s" height="18" fill="%s"/>`+"\n", plotLeft, top, num(x(res.Median)-plotLeft), color)
	for _, s := range res.Samples {
		fmt.Fprintf(b, `<circle cx="%s" cy="%d" r="2.5" fill="#222" fill-opacity="0.45"/>`+"\n", num(x(s)), top+28)
	}
	gx := num(x(res.Goal))
	fmt.Fprintf(b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#222" stroke-width="1.5" stroke-dasharray="4 3"/>`+"\n", gx, top-6, gx, top+34)
	cmp := "≥"
	if res.AtMost {
		cmp = "≤"
	}
	text(b, int(x(res.Goal))+4, top-2, `font-size="11" fill="#222"`, fmt.Sprintf("goal %s %s", cmp, value(res.Goal, res.Unit)))
	verdict := "meets the goal"
	if !res.Met() {
		verdict = "misses the goal"
	}
	text(b, plotRight+10, top+14, `font-weight="bold"`, value(res.Median, res.Unit))
	text(b, plotRight+10, top+30, `font-size="11" fill="#555"`, verdict)
}

// scaleMax is the value at the right end of a row's scale: past the goal,
// the median and every sample.
func scaleMax(res Result) float64 {
	m := max(res.Goal, res.Median)
	if len(res.Samples) > 0 {
		m = max(m, slices.Max(res.Samples))
	}
	if m <= 0 {
		return 1
	}
	return m * 1.15
}

// value formats v in unit for the chart.
func value(v float64, unit string) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	if v >= 10 {
		s = strconv.FormatFloat(v, 'f', 1, 64)
	}
	if unit == "ratio" || unit == "" {
		return s
	}
	return s + " " + unit
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// text writes a text element whose content is escaped.
func text(b *bytes.Buffer, x, y int, attrs, s string) {
	fmt.Fprintf(b, `<text x="%d" y="%d" %s>`, x, y, attrs)
	_ = xml.EscapeText(b, []byte(s))
	b.WriteString("</text>\n")
}
