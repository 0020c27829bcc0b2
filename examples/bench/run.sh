#!/usr/bin/env bash
# The load run of caddy-irma (see README.md): logs in once with the
# development wallet, then has wrk send the same request through plain
# reverse_proxy (/plain/) and through irma_auth (/members/), on loopback.
# Needs wrk (apt-get install wrk) and what `make wallet` needs.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEMO_DIR=${DEMO_DIR:-$PWD/.demo/bench}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-32}
base=http://127.0.0.1:8081

make -s build wallet
bits=(); [ -n "$(ls "$DEMO_DIR"/privkeys/*.xml 2>/dev/null)" ] || bits=(--bits 1024)
bin/caddy irma demo-scheme --dir "$DEMO_DIR" --url $base/irma/ "${bits[@]}" >/dev/null 2>&1
tmp=$(mktemp -d)
bin/caddy run --config examples/bench/Caddyfile --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
caddy=$!
trap 'kill $caddy 2>/dev/null; wait $caddy 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do curl -s -o /dev/null $base/plain/ && break; sleep 0.1; done

wallet=(bin/irma-wallet --dir "$tmp/wallet" --schemes "$DEMO_DIR/schemes")
"${wallet[@]}" session --yes $base/issue >/dev/null
curl -s -c "$tmp/jar" -H 'Accept: application/json' $base/members/ >"$tmp/login.json"
"${wallet[@]}" session --yes - <"$tmp/login.json" >/dev/null
curl -s -b "$tmp/jar" -c "$tmp/jar" -o /dev/null $base/members/
cookie=$(awk '$6 == "irma_session" { print $7 }' "$tmp/jar")
[ -n "$cookie" ] || { echo "login failed" >&2; exit 1; }

rate() { wrk -t2 -c"$connections" -d"$duration" -H "Cookie: irma_session=$cookie" "$1" | tee /dev/stderr | awk '/Requests\/sec/ { print $2 }'; }
echo "== plain reverse_proxy" >&2
plain=$(rate $base/plain/)
echo "== irma_auth" >&2
auth=$(rate $base/members/)
awk -v p="$plain" -v a="$auth" 'BEGIN { printf "reverse_proxy %.0f req/s, irma_auth %.0f req/s: irma_auth costs %.2fx the time of reverse_proxy\n", p, a, p / a }'
