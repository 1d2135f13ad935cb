#!/usr/bin/env bash
# `make demo`: build and install lockbox, start the throwaway cluster
# (test/cluster.sh), play demo/demo.sql in psql against a fresh database
# lockbox_demo, echoing every line of the script with its result, then stop.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
export PATH="$BINDIR:$PATH"

trap 'test/cluster.sh stop || true' EXIT
trap 'echo "== interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

echo "== building"
make -s --no-print-directory -j"$(nproc)"
echo "== installing (make install)"
make -s --no-print-directory install
test/cluster.sh start
eval "$(test/cluster.sh env)"
createdb lockbox_demo

echo "== playing demo/demo.sql in database lockbox_demo"
echo
if ! psql -X -d lockbox_demo -v ON_ERROR_STOP=1 --echo-all \
	-P pager=off -P null='(null)' -f demo/demo.sql; then
	echo "== demo/demo.sql stopped on the error above" >&2
	exit 1
fi
echo
echo "== demo finished"
