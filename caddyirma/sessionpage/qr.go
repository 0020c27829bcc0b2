package sessionpage

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"

	"rsc.io/qr"
)

// QRSVG renders text as a QR code in an inline SVG element: no image
// request, no script, and sharp at any size.
func QRSVG(text string) (template.HTML, error) {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", fmt.Errorf("encoding qr code: %w", err)
	}
	const quiet = 4 // the quiet zone the QR standard asks for
	n := code.Size + 2*quiet
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges" role="img" aria-labelledby="qr-title">`, n, n)
	b.WriteString(`<title id="qr-title">QR code</title>`)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y := 0; y < code.Size; y++ {
		for x := 0; x < code.Size; x++ {
			if !code.Black(x, y) {
				continue
			}
			// One horizontal run at a time keeps the path short.
			start := x
			for x+1 < code.Size && code.Black(x+1, y) {
				x++
			}
			fmt.Fprintf(&b, "M%d %dh%dv1h-%dz", start+quiet, y+quiet, x-start+1, x-start+1)
		}
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String()), nil
}

// QRDataURL renders text as a QR code in a data URL of an SVG image: what
// an <img> of a page shows, and what a script that runs the session itself
// can show without a QR library.
func QRDataURL(text string) (string, error) {
	svg, err := QRSVG(text)
	if err != nil {
		return "", err
	}
	return "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(svg)), nil
}
