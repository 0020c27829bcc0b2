// Command irma-benchreport gathers the results that make bench's
// benchmarks wrote (one JSON file each, see caddyirma/benchreport)
// into one report with the machine they ran on, and draws its chart:
//
//	irma-benchreport -in .bench -json caddyirma/e2e/benchresults/results.json \
//		-svg caddyirma/e2e/benchresults/bench.svg
//
// It prints the results as a Markdown table too.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/benchreport"
)

func main() {
	in := flag.String("in", ".bench", "the directory the benchmarks wrote their results into")
	jsonOut := flag.String("json", "", "where to write the report as JSON")
	svgOut := flag.String("svg", "", "where to draw the chart (SVG)")
	flag.Parse()
	log.SetFlags(0)
	results, err := benchreport.ReadDir(*in)
	if err != nil {
		log.Fatalf("irma-benchreport: %v", err)
	}
	if len(results) == 0 {
		log.Fatalf("irma-benchreport: no results in %s", *in)
	}
	rep := benchreport.Report{Machine: benchreport.ThisMachine(time.Now()), Results: results}
	if *jsonOut != "" {
		if err := rep.WriteJSON(*jsonOut); err != nil {
			log.Fatalf("irma-benchreport: %v", err)
		}
	}
	if *svgOut != "" {
		var b bytes.Buffer
		if err := benchreport.SVG(&b, rep); err != nil {
			log.Fatalf("irma-benchreport: %v", err)
		}
		if err := os.WriteFile(*svgOut, b.Bytes(), 0o644); err != nil {
			log.Fatalf("irma-benchreport: %v", err)
		}
	}
	fmt.Print(benchreport.Markdown(rep))
}
