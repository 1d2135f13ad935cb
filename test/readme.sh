#!/usr/bin/env bash
# Plays the story of README.md's section "The lifecycle, in psql" and compares
# what psql prints with what the README shows, so that the two cannot drift.
#
# Each ```sql block of that section is a psql transcript: statements and
# comments as typed, each statement followed by what psql prints for it. This
# script takes the typed lines, in order, and runs them in one psql session
# of the superuser (the story switches people with SET SESSION AUTHORIZATION),
# in a fresh database lockbox_readme where lockbox was just created. psql
# echoes each line it reads (-a, as pg_regress runs it), so its output is the
# transcript again; the two are compared, ignoring white space at line ends
# and empty lines. The README leaves out, and so this script takes out of
# psql's output, the "(N rows)" footers and the empty result of a function
# that returns void (a one-column header whose only row is empty).
#
# A line of a block is output when it follows a complete statement (its last
# line, without a trailing "-- comment", ends with ";") and looks like psql
# output: a table line (it starts with a space), a separator (---+---), or an
# ERROR:, DETAIL:, HINT:, NOTICE:, WARNING:, CONTEXT: or LINE n: line. Every
# other line is typed. A line classified wrongly makes the comparison fail.
#
# Run by test/run.sh (suite readme) with PGHOST/PGPORT of the throwaway
# cluster; exits non-zero when psql and the README differ. The database and
# the roles the story creates are dropped afterwards; roles of those names
# must not exist before.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
export PATH="$BINDIR:$PATH"
README=$ROOT/README.md
SECTION="## The lifecycle, in psql"
DB=lockbox_readme

work=$(mktemp -d "${TMPDIR:-/tmp}/lockbox-readme.XXXXXX")
roles=()
cleanup() {
	local r
	PGOPTIONS="-c client_min_messages=warning" dropdb --if-exists "$DB" || true
	for r in "${roles[@]}"; do
		psql -X -q -d postgres -c "DROP ROLE IF EXISTS $r" || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# The section's ```sql blocks: typed lines to input.sql, every line to
# expected.out.
awk -v section="$SECTION" -v input="$work/input.sql" -v expected="$work/expected.out" '
	function is_output(line) {
		return line ~ /^ / || line ~ /^-+(\+-+)*$/ ||
			line ~ /^(ERROR|DETAIL|HINT|NOTICE|WARNING|CONTEXT|LINE [0-9]+):/
	}
	/^## / && !inblock { insection = ($0 == section); next }
	!insection { next }
	/^```sql$/ && !inblock { inblock = 1; blocks++; next }
	/^```/ && inblock { inblock = 0; next }
	!inblock { next }
	{
		if (!open && is_output($0)) {
			print > expected
			next
		}
		print > input
		print > expected
		code = $0
		sub(/--.*$/, "", code)
		if (code ~ /^[ \t]*$/)
			next
		open = (code !~ /;[ \t]*$/)
	}
	END {
		printf "" >> input
		printf "" >> expected
		print blocks + 0
	}
' "$README" >"$work/blocks"
if (($(cat "$work/blocks") == 0)) || ! grep -q ';' "$work/input.sql"; then
	echo "test/readme.sh: no \`\`\`sql block with a statement in section \"$SECTION\" of README.md" >&2
	exit 1
fi

mapfile -t roles < <(grep -oiE 'CREATE ROLE [a-z_][a-z0-9_]*' "$work/input.sql" | awk '{ print $3 }')
for r in "${roles[@]}"; do
	if [[ -n $(psql -X -A -t -q -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$r'") ]]; then
		echo "test/readme.sh: role $r exists already; the story creates it (run on a throwaway cluster)" >&2
		roles=()
		exit 1
	fi
done

PGOPTIONS="-c client_min_messages=warning" dropdb --if-exists "$DB"
createdb "$DB"
psql -X -q -v ON_ERROR_STOP=1 -d "$DB" -c 'CREATE EXTENSION lockbox'
# the story's errors are part of it: no ON_ERROR_STOP; a statement that hangs
# is cut short
PGOPTIONS="-c statement_timeout=60s" \
	psql -X -a -q -P footer=off -d "$DB" <"$work/input.sql" >"$work/psql.out" 2>&1

# Without line-end white space and empty lines; from psql's output also the
# empty result of a void function.
normalize() {
	awk -v drop_void="$1" '
		{ line[NR] = $0 }
		END {
			for (i = 1; i <= NR; i++) {
				if (drop_void && line[i] ~ /^ [^|]*$/ && line[i + 1] ~ /^-+$/ &&
					line[i + 2] ~ /^ *$/ && line[i + 2] != "") {
					i += 2
					continue
				}
				sub(/[ \t]+$/, "", line[i])
				if (line[i] != "")
					print line[i]
			}
		}
	' "$2"
}
normalize 0 "$work/expected.out" >"$work/expected"
normalize 1 "$work/psql.out" >"$work/actual"

if ! diff -u --label "README.md ($SECTION)" --label "psql" "$work/expected" "$work/actual"; then
	echo "test/readme.sh: what psql prints (+) differs from README.md (-)" >&2
	exit 1
fi
echo "README.md, \"${SECTION#\#\# }\": $(cat "$work/blocks") blocks, $(grep -c ';' "$work/input.sql") lines with a statement, as shown"
