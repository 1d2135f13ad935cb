#!/usr/bin/env bash
# The throwaway PostgreSQL 15 cluster that `make test` and `make demo` use.
#
#   test/cluster.sh start    initdb afresh in .cluster/data and start it
#   test/cluster.sh start --at INSTANT
#                            the same, with the server's clock (every process
#                            of it) starting at INSTANT ("2027-02-28 23:59:55
#                            UTC", any date(1) -d form) and running on from
#                            there: libfaketime, preloaded with
#                            test/faketime_waits.c (built into .cluster/)
#   test/cluster.sh stop     stop it (nothing to do if it is not running)
#   test/cluster.sh status   pg_ctl status
#   test/cluster.sh env      print export lines: eval "$(test/cluster.sh env)"
#
# Unix socket only (in .cluster/, port 54329), trust authentication, superuser
# "postgres", settings from test/lockbox_test.conf. PostgreSQL refuses to run
# as root, so when run as root the server runs as the OS user postgres.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PORT=54329
CLUSTER=$ROOT/.cluster
DATA=$CLUSTER/data
LOG=$CLUSTER/server.log
CONF=$ROOT/test/lockbox_test.conf
OS_USER=postgres

if [[ $EUID -eq 0 ]]; then
	as_owner=(runuser -u "$OS_USER" --)
else
	as_owner=() # not root: the cluster runs as the caller
	OS_USER=$(id -un)
fi

# pg_ctl as the cluster's owner; env_prefix (VAR=value ...) goes to its
# environment, and so to the server's
env_prefix=()
pg_ctl() { (cd / && "${as_owner[@]}" env "${env_prefix[@]}" "$BINDIR/pg_ctl" -D "$DATA" "$@"); }

is_running() { [[ -f $DATA/postmaster.pid ]] && pg_ctl status >/dev/null 2>&1; }

# The server, running as postgres, must reach the checkout: a CI clone under
# /root (mode 700) is not traversable. Open only the directories that need it.
ensure_traversable() {
	[[ $EUID -eq 0 ]] || return 0
	"${as_owner[@]}" test -x "$ROOT" 2>/dev/null && return 0
	local dir="" part opened=()
	local -a parts
	IFS=/ read -ra parts <<<"${ROOT#/}"
	for part in "${parts[@]}"; do
		dir+=/$part
		if ! "${as_owner[@]}" test -x "$dir" 2>/dev/null; then
			chmod o+x "$dir"
			opened+=("$dir")
		fi
	done
	echo "== made ${opened[*]} traversable for user $OS_USER (chmod o+x), so it can reach $ROOT"
}

cmd_stop() {
	if is_running; then
		echo "== stopping throwaway cluster"
		pg_ctl stop -m fast -w -t 60 >/dev/null
	fi
}

# The environment that starts the server with its clock at instant $1: a
# fixed offset from the real clock, the same in every process however it was
# started; file times and the monotonic clock left real.
fake_clock_env() {
	local at=$1 target shim=$CLUSTER/faketime_waits.so
	local libfaketime=${LIBFAKETIME:-/usr/lib/$(cc -print-multiarch 2>/dev/null)/faketime/libfaketime.so.1}
	target=$(date -d "$at" +%s) || {
		echo "test/cluster.sh: --at $at: not a date" >&2
		exit 2
	}
	[[ -r $libfaketime ]] || {
		echo "test/cluster.sh: --at needs libfaketime ($libfaketime; Debian package libfaketime)" >&2
		exit 1
	}
	if ! cc -O2 -Wall -Werror -shared -fPIC -o "$shim" "$ROOT/test/faketime_waits.c" -ldl; then
		echo "test/cluster.sh: could not build $shim" >&2
		exit 1
	fi
	env_prefix=(LD_PRELOAD="$shim $libfaketime" FAKETIME="+$((target - $(date +%s)))s"
		FAKETIME_DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1)
}

cmd_start() {
	local at=""
	case ${1:-} in
	"") ;;
	--at)
		at=${2:?test/cluster.sh start --at INSTANT}
		;;
	*)
		echo "usage: test/cluster.sh start [--at INSTANT]" >&2
		exit 2
		;;
	esac
	if [[ ${#CLUSTER} -gt 92 ]]; then
		echo "test/cluster.sh: socket path $CLUSTER/.s.PGSQL.$PORT is too long for a unix socket (107 bytes); use a shorter checkout path" >&2
		exit 1
	fi
	[[ -r $CONF ]] || { echo "test/cluster.sh: $CONF is missing" >&2; exit 1; }
	cmd_stop
	ensure_traversable
	echo "== starting throwaway cluster on port $PORT (.cluster/, as OS user $OS_USER)"
	# only what this script owns: bench/run keeps its own cluster in .cluster/bench
	rm -rf "$DATA" "$LOG" "$CLUSTER/initdb.log" "$CLUSTER/tap" "$CLUSTER/prove.out"
	mkdir -p "$CLUSTER"
	chmod 700 "$CLUSTER"
	[[ $EUID -ne 0 ]] || chown "$OS_USER:" "$CLUSTER"

	if ! (cd / && "${as_owner[@]}" "$BINDIR/initdb" -D "$DATA" -U postgres \
		--auth=trust --encoding=UTF8 --locale=C --no-sync) >"$CLUSTER/initdb.log" 2>&1; then
		cat "$CLUSTER/initdb.log" >&2
		echo "test/cluster.sh: initdb failed" >&2
		exit 1
	fi
	{
		echo
		echo "# test/cluster.sh"
		echo "port = $PORT"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$CLUSTER'"
		echo
		echo "# test/lockbox_test.conf"
		cat "$CONF"
	} >>"$DATA/postgresql.conf"

	if [[ -n $at ]]; then
		fake_clock_env "$at"
		echo "== the server's clock starts at $at (libfaketime)"
	fi
	if ! pg_ctl start -w -t 60 -l "$LOG" >/dev/null; then
		echo "test/cluster.sh: server did not start; end of $LOG:" >&2
		tail -n 30 "$LOG" >&2 || true
		exit 1
	fi
}

cmd_env() {
	printf 'export PGHOST=%q PGPORT=%q PGUSER=postgres PGDATABASE=postgres\n' "$CLUSTER" "$PORT"
}

case ${1:-} in
start) cmd_start "${@:2}" ;;
stop) cmd_stop ;;
status)
	if [[ ! -d $DATA ]]; then
		echo "no throwaway cluster in $DATA"
		exit 3
	fi
	pg_ctl status
	;;
env) cmd_env ;;
*)
	echo "usage: test/cluster.sh start|stop|status|env" >&2
	exit 2
	;;
esac
