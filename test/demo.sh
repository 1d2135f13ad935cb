#!/usr/bin/env bash
# `make demo`: build and install lockbox, start the throwaway cluster
# (test/cluster.sh), play demo/demo.sql in psql against a fresh database
# lockbox_demo, echoing every line of the script with its result; then
# delivery: start a local SMTP server (test/notify/receivers.py, Debian's
# python3-aiosmtpd), play demo/delivery.sql, let lockbox-notify deliver, and
# show the e-mail Acme's admin Ada receives.  Then stop.
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
echo "== delivery: a local SMTP server, lockbox-notify, and the e-mail Ada receives"
mail=$(mktemp -d "${TMPDIR:-/tmp}/lockbox-demo-mail.XXXXXX")
chmod 755 "$mail"
smtp_port=$((PGPORT + 2))
/usr/bin/python3 test/notify/receivers.py smtp --port "$smtp_port" --dir "$mail" >"$mail/smtp.out" 2>&1 &
smtp_pid=$!
trap 'kill "$smtp_pid" 2>/dev/null || true; rm -rf "$mail"; test/cluster.sh stop || true' EXIT
for _ in $(seq 50); do grep -q listening "$mail/smtp.out" 2>/dev/null && break; sleep 0.1; done
if ! psql -X -d lockbox_demo -v ON_ERROR_STOP=1 --echo-all \
	-P pager=off -P null='(null)' -f demo/delivery.sql; then
	echo "== demo/delivery.sql stopped on the error above" >&2
	exit 1
fi
cat >"$mail/notify.conf" <<EOF
conninfo = 'host=$PGHOST port=$PGPORT dbname=lockbox_demo user=notifier'
smtp_url = smtp://127.0.0.1:$smtp_port
smtp_tls = off
from = lockbox@operator.example
EOF
echo
echo "\$ lockbox-notify --config notify.conf --once"
"$BINDIR/lockbox-notify" --config "$mail/notify.conf" --once 2>&1 | sed 's/^[0-9-]* [0-9:.]* UTC //'
ada=$(grep -l '^To: ada@acme.example' "$mail"/mail/*.eml | head -n 1)
echo
echo "== the e-mail in ada@acme.example's inbox:"
echo
tr -d '\r' <"$ada"
echo
psql -X -d lockbox_demo -P pager=off -P footer=off -c "SELECT recipient, event, delivered_at IS NOT NULL AS delivered
  FROM lockbox.notifications WHERE request_id = (SELECT max(id) FROM lockbox.request) ORDER BY id"
echo
echo "== demo finished"
