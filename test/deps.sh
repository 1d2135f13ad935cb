#!/usr/bin/env bash
# Install, through apt-get, whatever `make demo`, `make test` and `make bench`
# need and this machine does not have yet (Debian 12, run as root).
# Idempotent: when everything is present this is one dpkg-query and exits.
set -euo pipefail

packages=(
	postgresql-15                          # server, initdb, pg_ctl, psql
	postgresql-server-dev-15               # PGXS, pg_regress, pg_isolation_regress, TAP modules
	postgresql-15-pgtap                    # CREATE EXTENSION pgtap
	libtap-parser-sourcehandler-pgtap-perl # pg_prove
	libipc-run-perl                        # PostgreSQL::Test::Cluster
	postgresql-15-set-user                 # CREATE EXTENSION set_user (sql/10_posture.sql)
	postgresql-15-pgaudit                  # pgaudit next to lockbox (test/t/031_pgaudit.pl)
	libfaketime                            # the test cluster at a fake instant (test/cluster.sh --at)
	pgbouncer                              # lockbox behind a connection pooler (test/t/022_pgbouncer.pl)
)
if ! command -v gcc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
	packages+=(build-essential)
fi

# One dpkg-query for all of them; unknown packages print nothing on stdout.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
missing=()
for p in "${packages[@]}"; do
	grep -qx "$p installed" <<<"$installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $EUID -ne 0 ]]; then
	echo "test/deps.sh: missing packages: ${missing[*]}; run as root to install them" >&2
	exit 1
fi

# Keep the postgresql-15 package from creating and starting a system cluster
# "main" that we would never use. Only on a machine where postgresql-common has
# not been configured yet; its createcluster.conf includes this directory.
if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
	mkdir -p /etc/postgresql-common/createcluster.d
	echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/lockbox-no-main-cluster.conf
	echo "== no system cluster: wrote /etc/postgresql-common/createcluster.d/lockbox-no-main-cluster.conf"
fi

echo "== installing missing packages: ${missing[*]}"
log=$(mktemp /tmp/lockbox-deps.XXXXXX.log)
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
if ! { apt-get "${apt_opts[@]}" update &&
	apt-get "${apt_opts[@]}" --no-install-recommends install "${missing[@]}"; } >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	echo "test/deps.sh: apt-get failed; full log in $log" >&2
	exit 1
fi
rm -f "$log"
echo "== installed: ${missing[*]}"
