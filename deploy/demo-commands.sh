#!/usr/bin/env sh
# Print the curl commands that drive the demo process. They are kept in one place, examples/README.md
# (between the demo-commands markers), so that `make run` and the README cannot drift apart.
set -eu
cd "$(dirname "$0")/.."
echo "Once the server below is up, drive the demo from another terminal at $(pwd):"
echo
sed -n '/<!-- demo-commands:begin -->/,/<!-- demo-commands:end -->/p' examples/README.md | grep -v -e '^<!--' -e '^```'
echo
