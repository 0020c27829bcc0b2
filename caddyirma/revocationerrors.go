package caddyirma

import (
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// schemesLabel is how the scheme loader starts its errors.
var schemesLabel = regexp.MustCompile(`(?:irma: )?schemes_path "[^"]*": `)

// connStringWords are the words of a connection string that are no secret:
// its keys and the names of the drivers.
var connStringWords = map[string]bool{"host": true, "port": true, "user": true, "password": true, "dbname": true,
	"sslmode": true, "disable": true, "require": true, "postgres": true, "postgresql": true, "mysql": true,
	"sqlserver": true, "tcp": true, "connect_timeout": true, "database": true, "localhost": true}

// redactConnString leaves out of msg every word of the connection string
// conn (a password, a user, a host) but its keys.
func redactConnString(msg, conn string) string {
	words := strings.FieldsFunc(conn, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune(`='"\:@/?&;,()`, r)
	})
	slices.SortFunc(words, func(a, b string) int { return len(b) - len(a) }) // the longest first
	for _, w := range words {
		if len(w) >= 3 && !connStringWords[strings.ToLower(w)] {
			msg = strings.ReplaceAll(msg, w, "(not shown)")
		}
	}
	return msg
}
