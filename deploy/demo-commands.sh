#!/usr/bin/env sh
# Print the curl commands that drive the demo process. They are kept in one place, examples/README.md
# (between the demo-commands markers), so that `make run` and the README cannot drift apart. The arguments
# are serve's (make run ARGS=...): a --port or --host there goes into the commands' address too.
set -eu
cd "$(dirname "$0")/.."
host=127.0.0.1
port=8080
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --port=*) port="${1#--port=}"; shift ;;
    --host) host="$2"; shift 2 ;;
    --host=*) host="${1#--host=}"; shift ;;
    *) shift ;;
  esac
done
case "$host" in 0.0.0.0|::) host=127.0.0.1 ;; esac
echo "Once the server below is up, open the console: http://$host:$port/"
echo
echo "or drive the demo from another terminal at $(pwd) (or with .venv/bin/procengine start demo, .venv/bin/procengine watch ID):"
echo
sed -n '/<!-- demo-commands:begin -->/,/<!-- demo-commands:end -->/p' examples/README.md \
  | grep -v -e '^<!--' -e '^```' | sed "s|127.0.0.1:8080|$host:$port|g"
echo
