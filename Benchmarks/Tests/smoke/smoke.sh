#!/usr/bin/env bash
# Smoke test of one server and one client: starts the server on port 0, reads
# the port it prints, runs the client against it (bounded), stops the server
# with SIGINT and checks that both exited 0 (the clients exit 0 only when every
# transfer completed with the right bytes and no error).
#   usage: smoke.sh [--match CLIENT_KEY SERVER_WORD] -- SERVER... -- CLIENT...
# --match: the number after CLIENT_KEY= in the client's "result:" line must
# equal the number before SERVER_WORD in the server's closing line.
set -u
match_key=""; match_word=""
if [ "${1:-}" = "--match" ]; then match_key=$2; match_word=$3; shift 3; fi
[ "${1:-}" = "--" ] || { echo "usage: smoke.sh [--match KEY WORD] -- SERVER... -- CLIENT..." >&2; exit 2; }
shift
server=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do server+=("$1"); shift; done
shift; client=("$@")

dir=$(mktemp -d -t seda-smoke.XXXX)
trap 'kill -9 $spid 2>/dev/null; rm -rf "$dir"' EXIT
"${server[@]}" --port 0 >"$dir/server.out" 2>"$dir/server.err" &
spid=$!
port=""
for _ in $(seq 100); do
  port=$(grep -o '127\.0\.0\.1:[0-9]*' "$dir/server.out" 2>/dev/null | head -1 | cut -d: -f2)
  [ -n "$port" ] && break
  kill -0 $spid 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "FAIL: the server printed no port"; cat "$dir/server.out" "$dir/server.err"; exit 1
fi
echo "server: ${server[*]} on port $port"
timeout 120 "${client[@]}" --port "$port" >"$dir/client.out" 2>"$dir/client.err"
crc=$?
kill -INT $spid
src=124
for _ in $(seq 100); do
  if ! kill -0 $spid 2>/dev/null; then wait $spid; src=$?; break; fi
  sleep 0.1
done
cat "$dir/client.out"
cat "$dir/server.err"
fail=0
[ $crc -eq 0 ] || { echo "FAIL: the client exited $crc"; tail -5 "$dir/client.err"; fail=1; }
[ $src -eq 0 ] || { echo "FAIL: the server exited $src after SIGINT (124: did not stop)"; fail=1; }
if [ -n "$match_key" ]; then
  c=$(grep '^result:' "$dir/client.out" | grep -o " $match_key=[0-9]*" | cut -d= -f2)
  s=$(grep -o "[0-9]* $match_word" "$dir/server.err" | tail -1 | cut -d' ' -f1)
  if [ -z "$c" ] || [ "$c" != "$s" ]; then
    echo "FAIL: client $match_key=$c but the server counted '$s $match_word'"; fail=1
  else
    echo "ok: client $match_key=$c, server $s $match_word"
  fi
fi
[ $fail -eq 0 ] && echo "PASS"
exit $fail
