package sessionpage

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"strconv"

	"rsc.io/qr"
)

// QRSVG renders text as a QR code in an inline SVG element: no image
// request, no script, and sharp at any size.
func QRSVG(text string) (template.HTML, error) {
	svg, err := appendQRSVG(nil, text)
	if err != nil {
		return "", err
	}
	return template.HTML(svg), nil
}

// QRDataURL renders text as a QR code in a data URL of an SVG image: what
// an <img> of a page shows, and what a script that runs the session itself
// can show without a QR library.
func QRDataURL(text string) (string, error) {
	svg, err := appendQRSVG(make([]byte, 0, 8<<10), text)
	if err != nil {
		return "", err
	}
	const prefix = "data:image/svg+xml;base64,"
	url := make([]byte, 0, len(prefix)+base64.StdEncoding.EncodedLen(len(svg)))
	return string(base64.StdEncoding.AppendEncode(append(url, prefix...), svg)), nil
}

// appendQRSVG appends the SVG element of QRSVG to b. Every login answers
// with one: numbers are appended with strconv, not fmt, which took most of
// the time.
func appendQRSVG(b []byte, text string) ([]byte, error) {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return nil, fmt.Errorf("encoding qr code: %w", err)
	}
	const quiet = 4 // the quiet zone the QR standard asks for
	n := int64(code.Size + 2*quiet)
	b = append(b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 `...)
	b = append(strconv.AppendInt(b, n, 10), ' ')
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `" shape-rendering="crispEdges" role="img" aria-labelledby="qr-title">`...)
	b = append(b, `<title id="qr-title">QR code</title>`...)
	b = append(strconv.AppendInt(append(b, `<rect width="`...), n, 10), `" height="`...)
	b = append(strconv.AppendInt(b, n, 10), `" fill="#fff"/><path fill="#000" d="`...)
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
			run := int64(x - start + 1)
			b = append(strconv.AppendInt(append(b, 'M'), int64(start+quiet), 10), ' ')
			b = append(strconv.AppendInt(b, int64(y+quiet), 10), 'h')
			b = append(strconv.AppendInt(b, run, 10), "v1h-"...)
			b = append(strconv.AppendInt(b, run, 10), 'z')
		}
	}
	return append(b, `"/></svg>`...), nil
}
