#!/usr/bin/env bash
# `make test`: build and install lockbox, start the throwaway cluster
# (test/cluster.sh), then run every suite on its own, going on after a failure:
#
#   build         make             a VPATH build of a copy of the sources (as Debian's
#                                  pg_buildext builds): every file compiled with -Werror,
#                                  lockbox's symbols in lockbox.so, every file make
#                                  install installs (into a DESTDIR), every test make
#                                  installcheck would run; -Werror only with WERROR=1
#   regress       pg_regress       sql/*.sql (not the install scripts), expected/*.out
#   isolation     isolationtester  test/isolation/specs/*.spec, test/isolation/expected/*.out
#   pgtap         pg_prove         test/*.sql, in a fresh database lockbox_tap
#   readme        psql             README.md's story ("The lifecycle, in psql") played as
#                                  it stands, psql's output compared with the README's
#                                  (test/readme.sh)
#   installcheck  make             the suites above left no role (but lockbox's four
#                                  group roles) and no ALTER SYSTEM setting; make
#                                  installcheck refuses a server whose configuration
#                                  does not set lockbox_test.installcheck = on
#   tap           prove            test/t/*.pl (PostgreSQL::Test::Cluster), as OS user postgres
#   clock         pg_regress,      regress and pgtap again (pgTAP in PST8PDT, as
#                 pg_prove         pg_regress), on a cluster whose clock starts at each
#                                  of CLOCK_INSTANTS (test/cluster.sh start --at,
#                                  libfaketime): no test may depend on the date
#
# test/run.sh [SUITE...] runs only the named suites, in the order above.
# prove runs TAP_JOBS (default 3) TAP files at a time, the longest first;
# PROVE_FLAGS (e.g. -v, or -j1 to run them one by one) is passed to prove
# after that. Ends with a summary whose last line is "N passed, N failed";
# exits non-zero when a suite failed.
set -euo pipefail
shopt -s nullglob

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PGXS_DIR=$("$BINDIR/pg_config" --pkglibdir)/pgxs
export PATH="$BINDIR:$PATH"
CLUSTER=$ROOT/.cluster

all_suites=(build regress isolation pgtap readme installcheck tap clock)
suites=("$@")
((${#suites[@]})) || suites=("${all_suites[@]}")
for s in "${suites[@]}"; do
	[[ " ${all_suites[*]} " == *" $s "* ]] || {
		echo "usage: test/run.sh [${all_suites[*]}]..." >&2
		exit 2
	}
done

if [[ $EUID -eq 0 ]]; then as_postgres=(runuser -u postgres --); else as_postgres=(); fi

trap 'test/cluster.sh stop || true' EXIT
trap 'echo "== interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# Print a file that explains a failure, at most $2 lines of it.
show() {
	local file=$1 max=${2:-300} n
	[[ -f $file ]] || return 0
	n=$(wc -l <"$file")
	echo "---- $file ($n lines$( ((n > max)) && echo ", first $max"))"
	head -n "$max" "$file"
	echo "---- end of $file"
}

# Print the last $2 lines of a log.
show_tail() {
	local file=$1 max=${2:-60}
	[[ -f $file ]] || return 0
	echo "---- last $max lines of $file"
	tail -n "$max" "$file"
	echo "---- end of $file"
}

suite_build() {
	local dir f missing=0 cmds
	dir=$(mktemp -d "${TMPDIR:-/tmp}/lockbox-build.XXXXXX")
	mkdir "$dir/src" "$dir/build"
	# A VPATH build needs a source tree without build products (make would
	# find the checkout's own lockbox.so through VPATH and call it up to
	# date): a copy of the checkout without them.
	tar -C "$ROOT" --exclude=./.git --exclude=./.cluster --exclude='*.o' \
		--exclude='*.so' --exclude='*.bc' -cf - . | tar -C "$dir/src" -xf - ||
		{ rm -rf "$dir"; return 1; }
	# from the build directory, as `make -f ../src/Makefile VPATH=../src`
	vmake() { make -s --no-print-directory -C "$dir/build" -f ../src/Makefile VPATH=../src "$@"; }

	# every file, compiled afresh with -Werror (the checkout's own build
	# recompiles only what changed since the last make, with or without it)
	vmake -j2 WERROR=1 || { rm -rf "$dir"; return 1; }
	# (nm's output read whole first: grep -q stops at the first match, and
	# under pipefail nm's SIGPIPE on the rest would fail the check)
	if ! grep -qw lockbox_request <<<"$(nm -D --defined-only "$dir/build/lockbox.so")"; then
		echo "the lockbox.so of a VPATH build does not define lockbox_request"
		missing=1
	fi
	vmake install DESTDIR="$dir/stage" || { rm -rf "$dir"; return 1; }
	for f in lockbox.control sql/lockbox--*.sql; do
		cmp -s "$f" "$dir/stage$(pg_config --sharedir)/extension/${f#sql/}" ||
			{ echo "make install of a VPATH build did not install $f"; missing=1; }
	done
	cmp -s "$dir/build/lockbox.so" "$dir/stage$(pg_config --pkglibdir)/lockbox.so" ||
		{ echo "make install of a VPATH build did not install lockbox.so"; missing=1; }
	# what make installcheck would run there: every test, from the checkout
	cmds=$(vmake -n installcheck)
	for f in sql/*.sql test/isolation/specs/*.spec; do
		[[ $f == sql/lockbox--* ]] && continue
		f=${f##*/}
		grep -qw -- "${f%.*}" <<<"$cmds" ||
			{ echo "make installcheck of a VPATH build would not run ${f%.*}"; missing=1; }
	done
	# -Wall for everyone, -Werror only when asked
	cmds=$(vmake -n -B)
	grep -q -- ' -Wall ' <<<"$cmds" || { echo "make compiles without -Wall"; missing=1; }
	! grep -qE -- ' -Werror( |$)' <<<"$cmds" || { echo "make compiles with -Werror"; missing=1; }
	grep -qE -- ' -Werror( |$)' <<<"$(vmake -n -B WERROR=1)" ||
		{ echo "make WERROR=1 compiles without -Werror"; missing=1; }
	rm -rf "$dir"
	return "$missing"
}

suite_regress() {
	local tests=()
	for f in sql/*.sql; do [[ $f == sql/lockbox--* ]] || tests+=("$f"); done
	((${#tests[@]})) || { skip_reason="no pg_regress tests in sql/"; return 0; }
	rm -rf results regression.diffs regression.out
	make -s --no-print-directory installcheck ISOLATION= TAP_TESTS= && return 0
	show regression.diffs
	return 1
}

suite_isolation() {
	local specs=(test/isolation/specs/*.spec)
	((${#specs[@]})) || { skip_reason="no specs in test/isolation/specs/"; return 0; }
	rm -rf output_iso
	make -s --no-print-directory installcheck REGRESS= TAP_TESTS= && return 0
	show output_iso/regression.diffs
	return 1
}

suite_pgtap() {
	local files=(test/*.sql)
	((${#files[@]})) || { skip_reason="no pgTAP files test/*.sql"; return 0; }
	createdb lockbox_tap &&
		psql -X -q -v ON_ERROR_STOP=1 -d lockbox_tap \
			-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION lockbox' || return 1
	pg_prove -d lockbox_tap "${files[@]}"
}

suite_readme() {
	test/readme.sh
}

# The roles of the cluster (but lockbox's group roles, which CREATE EXTENSION
# creates and DROP EXTENSION leaves) and its ALTER SYSTEM settings.
server_state() {
	psql -X -A -t -q -d postgres -c "
		SELECT 'role ' || rolname FROM pg_roles
		 WHERE rolname NOT IN ('lockbox_engineer', 'lockbox_reviewer',
							   'lockbox_approver', 'lockbox_auditor', 'lockbox_forwarder')
		UNION ALL
		SELECT 'ALTER SYSTEM SET ' || name || ' = ' || setting FROM pg_file_settings
		 WHERE sourcefile LIKE '%/postgresql.auto.conf'
		 ORDER BY 1"
}

suite_installcheck() {
	local out how now rc=0
	# first what the suites before left behind
	now=$(server_state) || return 1
	if [[ $now != "$server_before" ]]; then
		echo "the suites left the cluster changed (- before, + now):"
		diff <(echo "$server_before") <(echo "$now") | sed -n 's/^< /- /p; s/^> /+ /p'
		rc=1
	fi
	# make installcheck itself, with nothing to run, on the throwaway server
	# (test/lockbox_test.conf marks it)
	if ! out=$(make -s --no-print-directory installcheck REGRESS= ISOLATION= 2>&1); then
		echo "make installcheck refused the throwaway server:"
		echo "$out"
		rc=1
	fi
	# and on servers it must refuse before running a test: one whose
	# configuration unmarks it, one that is not there
	psql -X -q -c 'ALTER SYSTEM SET lockbox_test.installcheck = off' || return 1
	for how in "unmarked server" "no server"; do
		if [[ $how == "no server" ]]; then
			out=$(PGPORT=1 make -s --no-print-directory installcheck 2>&1)
		else
			out=$(make -s --no-print-directory installcheck 2>&1)
		fi && rc=1
		if ! grep -q 'make installcheck: refused' <<<"$out" || grep -q 'install-check' <<<"$out"; then
			echo "make installcheck, $how: not refused before running a test:"
			echo "$out"
			rc=1
		fi
	done
	psql -X -q -c 'ALTER SYSTEM RESET lockbox_test.installcheck' || return 1
	return "$rc"
}

# The TAP files that take longest (20 s to a minute each), longest first:
# prove starts them first, so that three at a time the run ends with short
# files on every side, not with one long file alone. (Each file has nodes,
# ports and directories of its own: PostgreSQL::Test::Cluster reserves the
# ports, and every file its own tmp_check/t_NNN_* directories.)
TAP_LONG=(045_standby_installations 017_worker_limit 005_upgrade 030_notify_delivery
	034_history_order 015_worker_launcher 014_hostile 030_access_log 040_operations
	033_retention 010_worker_expiry 032_standby_access 047_reinstall)

suite_tap() {
	local files=() flags=() extra=() tapdir=$CLUSTER/tap rc=0 f t
	for t in "${TAP_LONG[@]}"; do
		[[ -f test/t/$t.pl ]] && files+=("test/t/$t.pl")
	done
	for f in test/t/*.pl; do
		[[ " ${files[*]} " == *" $f "* ]] || files+=("$f")
	done
	((${#files[@]})) || { skip_reason="no TAP tests test/t/*.pl"; return 0; }
	flags=(-j"${TAP_JOBS:-3}")
	read -ra extra <<<"${PROVE_FLAGS:-}"
	flags+=("${extra[@]}")
	rm -rf "$tapdir"
	mkdir -p "$tapdir"
	[[ $EUID -ne 0 ]] || chown postgres: "$tapdir"
	# What PGXS's prove_installcheck sets, plus PERL5LIB for the test modules.
	# The nodes the tests create are started with pg_ctl, which refuses root.
	"${as_postgres[@]}" env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE \
		PATH="$PATH" \
		PERL5LIB="$PGXS_DIR/src/test/perl${PERL5LIB:+:$PERL5LIB}" \
		PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
		TESTDIR="$tapdir" \
		prove --timer -I "$PGXS_DIR/src/test/perl" -I "$ROOT/test" "${flags[@]}" "${files[@]}" |
		tee "$CLUSTER/prove.out" || rc=$?
	# prove's "Test Summary Report" names each failed file: show its logs.
	local failed_tests=() t log
	read -ra failed_tests <<<"$(sed -n 's|^test/t/\([^ ]*\)\.pl  *(Wstat.*|\1|p' "$CLUSTER/prove.out" | tr '\n' ' ')"
	for t in "${failed_tests[@]}"; do
		for log in "$tapdir/tmp_check/log/regress_log_$t" "$tapdir/tmp_check/log/${t}"_*.log; do
			show_tail "$log" 60
		done
	done
	return "$rc"
}

# The instants the suite clock runs at (the cluster's clock starts there):
# - 5 s before March 1 (UTC) of a year that is not a leap year: a month of 28
#   days, then one of 31;
# - 01:59:55 PST on the day US clocks spring forward: in PST8PDT, pg_regress's
#   time zone, the day has 23 hours and 02:00 becomes 03:00 PDT 5 s in.
CLOCK_INSTANTS=("2027-02-28 23:59:55 UTC" "2027-03-14 09:59:55 UTC")

suite_clock() {
	local at rc=0 late
	for at in "${CLOCK_INSTANTS[@]}"; do
		test/cluster.sh start --at "$at" || return 1
		# the clock of every server process, lockbox's launcher and the
		# worker of each database included, started at the instant
		if [[ $(psql -X -A -t -q -d postgres -c "SELECT now() - '$at' BETWEEN '0' AND '1 min'") != t ]]; then
			echo "the server's clock does not read $at"
			return 1
		fi
		suite_regress || rc=1
		PGTZ=PST8PDT suite_pgtap || rc=1
		late=$(psql -X -A -t -q -d postgres -c "
			SELECT string_agg(backend_type || ' started ' || backend_start, ', ')
			  FROM pg_stat_activity WHERE backend_start < '$at'")
		if [[ -n $late ]]; then
			echo "at $at, server processes on another clock: $late"
			rc=1
		fi
		if [[ $(psql -X -A -t -q -d postgres -c "
				SELECT count(DISTINCT backend_type) FROM pg_stat_activity
				 WHERE backend_type IN ('lockbox launcher', 'lockbox worker')") != 2 ]]; then
			echo "at $at, no lockbox launcher or worker to check the clock of"
			rc=1
		fi
	done
	return "$rc"
}

# -Werror here, not in a user's build (see the Makefile).
echo "== building (WERROR=1)"
if ! make -s --no-print-directory -j"$(nproc)" WERROR=1; then
	echo "== build failed; no suite was run" >&2
	exit 1
fi
echo "== installing (make install)"
make -s --no-print-directory install WERROR=1
test/cluster.sh start
eval "$(test/cluster.sh env)"
server_before=$(server_state)

declare -A label=([build]=build [regress]=pg_regress [isolation]=isolation [pgtap]=pgTAP
	[readme]=README [installcheck]=installcheck [tap]="TAP (Perl)" [clock]="fake clock")
summary=()
passed=0 failed=0
for s in "${all_suites[@]}"; do
	[[ " ${suites[*]} " == *" $s "* ]] || continue
	echo "== suite ${label[$s]}"
	skip_reason="" start=$SECONDS rc=0
	"suite_$s" || rc=$?
	took="$((SECONDS - start))s"
	if [[ -n $skip_reason ]]; then
		result="skipped: $skip_reason"
	elif ((rc == 0)); then
		result="passed ($took)" passed=$((passed + 1))
	else
		result="FAILED ($took)" failed=$((failed + 1))
	fi
	echo "== ${label[$s]}: $result"
	summary+=("$(printf '  %-14s %s' "${label[$s]}" "$result")")
done
test/cluster.sh stop

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
((failed == 0))
