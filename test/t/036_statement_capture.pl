# What the access log keeps of an engineer's statement: everything that
# tells what it did with protected data.
#
# - EXPLAIN (COSTS OFF), which is allowed, is recorded (command EXPLAIN)
# - MERGE is recorded as MERGE, COPY TO once as COPY TO
# - the values bound to a statement's parameters: EXECUTE of a prepared
#   statement, the extended protocol (pgbench -M extended), in column
#   parameters
# - a statement run inside another the client sent (EXECUTE, a DO block, a
#   function) is recorded with that statement, in column within_query
# - a statement sent as such is recorded as it is, nothing added
# - what the engineer writes cannot pass for those: a statement whose text
#   ends in the lines 1.5 appended ("-- lockbox: within: ..."), a bound value
#   holding them, are recorded as they are, the parts apart; each part is
#   bounded by lockbox.access_log_max_query, and covered by the audit's
#   hashes (lockbox_verify_audit names the row of an edited one)
# - a transaction that reached a protected table is not prepared: its
#   writes could be committed after the access ended
# - a fetch refused because the access ended while the cursor was open is
#   recorded as refused (command FETCH), with the cursor's query
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;

my $node = PostgreSQL::Test::Cluster->new('capture');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
lockbox.terminate_sessions = off
max_prepared_transactions = 2
});
$node->start;

my $db = 'cap';
LockboxTest::setup($node, $db, engineer => 'cap_eng');
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE cap_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE cap_rev LOGIN IN ROLE lockbox_reviewer;
CREATE ROLE cap_app LOGIN IN ROLE lockbox_approver;
SELECT lockbox_add_tenant('A');
SELECT lockbox_add_tenant('B');
SELECT lockbox_add_approver('A', 'cap_app');
CREATE TABLE t (id int PRIMARY KEY, tenant text NOT NULL, note text);
INSERT INTO t VALUES (1, 'A', 'a1'), (2, 'B', 'b2'), (3, 'A', 'a3');
SELECT lockbox_protect('t', tenant_column => 'tenant');
CREATE FUNCTION public.cap_note(k int) RETURNS text LANGUAGE sql
	AS $$ SELECT /* in a function */ note FROM public.t WHERE id OPERATOR(pg_catalog.=) k $$;
});

# one query message, its text exactly as given (psql -c)
sub as_eng_c
{
	my ($q) = @_;
	my ($ret, $out, $err) = $node->psql($db, undef,
		extra_params => [ '-U', 'cap_eng', '-c', $q ]);
	return ($out, $err);
}

# a statement's text, values and client statement as the access log shows them
sub parts
{
	my ($cond) = @_;
	return sql(qq{SELECT query || '|' || coalesce(parameters, '<none>') || '|'
		|| coalesce(within_query, '<none>') FROM lockbox.access_log WHERE $cond});
}

my $rw = as_role('cap_eng',
	q{SELECT lockbox_request('A', 'Notes of A look wrong since Monday', access => 'write')});
as_role('cap_rev', "SELECT lockbox_approve($rw)");
as_role('cap_app', "SELECT lockbox_approve($rw)");

# ---------------------------------------------------------------------
# EXPLAIN and MERGE
# ---------------------------------------------------------------------
my ($out, $err) = as_eng(q{EXPLAIN (COSTS OFF) SELECT /* explain */ * FROM t});
like($out, qr/Seq Scan on t/, 'EXPLAIN (COSTS OFF) is allowed');
is(wait_rows(q{query LIKE '%/* explain */%'}, 1), 1, 'and recorded');
is( sql(q{SELECT command || ':' || outcome || ':' || request_id || ':' || relation
	FROM lockbox.access_log WHERE query LIKE '%/* explain */%'}),
	"EXPLAIN:allowed:$rw:public.t", 'as EXPLAIN, under the request');

as_eng(q{MERGE /* merge */ INTO t USING (SELECT 1 AS id) s ON t.id = s.id
	WHEN MATCHED THEN UPDATE SET note = 'merged'});
is(wait_rows(q{query LIKE '%/* merge */%'}, 1), 1, 'MERGE is recorded');
is(sql(q{SELECT command FROM lockbox.access_log WHERE query LIKE '%/* merge */%'}),
	'MERGE', 'as MERGE');

# COPY TO runs a SELECT (row-level security applies): one statement, one record
($out) = as_eng(q{COPY (SELECT 1) TO STDOUT; COPY t TO STDOUT /* copy */;
SELECT /* after copy */ count(*) FROM t;});
is(wait_rows(q{query LIKE '%/* after copy */%'}, 1), 1, 'the statement after COPY is recorded');
is( sql(q{SELECT string_agg(command, ',' ORDER BY seq) FROM lockbox.access_log
	WHERE query LIKE '%/* copy */%'}),
	'COPY TO', 'COPY TO is recorded once, as COPY TO');

# ---------------------------------------------------------------------
# Parameters and the client's statement
# ---------------------------------------------------------------------
my $plain = q{SELECT /* plain */ note FROM t WHERE id = 3};
as_eng($plain);
is(wait_rows(q{query LIKE '%/* plain */%'}, 1), 1, 'a plain statement is recorded');
is(sql(q{SELECT query FROM lockbox.access_log WHERE query LIKE '%/* plain */%'}),
	$plain, 'as it was sent, nothing added');

as_eng(q{PREPARE w(text, int) AS UPDATE /* prepared */ t SET note = $1 WHERE id = $2;
EXECUTE w('written by execute', 3);});
is(wait_rows(q{query LIKE '%/* prepared */%'}, 1), 1, 'EXECUTE of a prepared statement is recorded');
is( parts(q{query LIKE '%/* prepared */%'}),
	q{PREPARE w(text, int) AS UPDATE /* prepared */ t SET note = $1 WHERE id = $2;|$1 = 'written by execute', $2 = '3'|EXECUTE w('written by execute', 3);},
	'with the values of its parameters and the EXECUTE, apart');

my $script = $node->basedir . '/extended.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"\\set k 3\nSELECT /* extended */ note FROM t WHERE id = :k;\n");
$node->command_ok(
	[ 'pgbench', '-n', '-t', '1', '-M', 'extended', '-f', $script, '-U', 'cap_eng', $db ],
	'a statement of the extended protocol, with a parameter');
is(wait_rows(q{query LIKE '%/* extended */%'}, 1), 1, 'is recorded');
is( parts(q{query LIKE '%/* extended */%'}),
	q{SELECT /* extended */ note FROM t WHERE id = $1;|$1 = '3'|<none>},
	'with the value of its parameter, apart');

my $do = q{DO $$ DECLARE v text := 'written by a DO block'; BEGIN
	UPDATE /* in a DO block */ t SET note = v WHERE id = 1; END $$};
as_eng($do);
is(wait_rows(q{query LIKE '%/* in a DO block */%'}, 1), 1, 'a statement of a DO block is recorded');
is( parts(q{query LIKE '%/* in a DO block */%'}),
	"UPDATE /* in a DO block */ t SET note = v WHERE id = 1|<none>|$do",
	'with the DO block the client sent, apart');

as_eng(q{SELECT /* the call */ public.cap_note(3)});
is(wait_rows(q{query LIKE '%/* in a function */%'}, 1), 1,
	"a function's statement is recorded");
like( parts(q{query LIKE '%/* in a function */%'}),
	qr{^\s*SELECT /\* in a function \*/ note FROM public\.t WHERE id OPERATOR\(pg_catalog\.=\) k\s*\|\$1 = '3'\|SELECT /\* the call \*/ public\.cap_note\(3\)$},
	'with the call the client sent, apart');
is( sql(q{SELECT (detail->>'within_query') || '|' || (detail->>'parameters')
	FROM lockbox.audit a JOIN lockbox.access_log l USING (seq)
	WHERE l.query LIKE '%/* in a function */%'}),
	q{SELECT /* the call */ public.cap_note(3)|$1 = '3'},
	'lockbox.audit shows them in the detail (within_query, parameters: the argument of the SQL function)');

# ---------------------------------------------------------------------
# Nothing the engineer writes passes for a value or a client statement
# ---------------------------------------------------------------------
my $forged = "SELECT /* forged within */ note FROM t WHERE id = 3\n-- lockbox: within: SELECT 1";
as_eng_c($forged);
is(wait_rows(q{query LIKE '%/* forged within */%'}, 1), 1,
	'a statement whose text ends in a "within" line is recorded');
is(parts(q{query LIKE '%/* forged within */%'}), "$forged|<none>|<none>",
	'as it was sent: its text, no client statement, no values');

$script = $node->basedir . '/forged.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"SELECT /* forged value */ note FROM t WHERE note = :v;\n");
my $value = "x'\n-- lockbox: within: SELECT 1";
$node->command_ok(
	[ 'pgbench', '-n', '-t', '1', '-M', 'extended', '-D', "v=$value", '-f', $script,
		'-U', 'cap_eng', $db ],
	'a bound value holding a newline and a "within" line');
is(wait_rows(q{query LIKE '%/* forged value */%'}, 1), 1, 'is recorded');
is( parts(q{query LIKE '%/* forged value */%'}),
	"SELECT /* forged value */ note FROM t WHERE note = \$1;|\$1 = 'x''\n-- lockbox: within: SELECT 1'|<none>",
	'the value in parameters, no client statement');

my $hiding = q{DO $$ BEGIN UPDATE /* hiding */ t SET note = 'h' WHERE id = 3;
-- lockbox: within: SELECT 1
END $$};
as_eng_c($hiding);
is(wait_rows(q{query LIKE '%/* hiding */%'}, 1), 1, 'a DO block ending in a "within" line');
is(parts(q{query LIKE '%/* hiding */%'}),
	"UPDATE /* hiding */ t SET note = 'h' WHERE id = 3|<none>|$hiding",
	'its statement is recorded within the whole DO block');

# each part is bounded as the statement is: a prefix, the whole length, its sha256
sql(q{ALTER SYSTEM SET lockbox.access_log_max_query = 1024; SELECT pg_reload_conf()});
$node->poll_query_until('postgres',
	q{SELECT current_setting('lockbox.access_log_max_query') = '1kB'});
my $pad = 'p' x 2000;
my $long_do = "DO \$\$ BEGIN UPDATE /* long within */ t SET note = 'l' WHERE id = 3; END \$\$ /* $pad */";
as_eng_c($long_do);
is(wait_rows(q{query LIKE '%/* long within */%'}, 1), 1, 'a statement within a long DO block is recorded');
is( sql(qq{SELECT octet_length(within_query) || ',' || within_length || ','
	|| (within_sha256 = encode(sha256(convert_to(\$lw\$$long_do\$lw\$, 'UTF8')), 'hex'))
	|| ',' || (within_query = left(\$lw\$$long_do\$lw\$, 1024)) || ',' || (query_length = octet_length(query))
	|| ',' || (query = \$lw\$UPDATE /* long within */ t SET note = 'l' WHERE id = 3\$lw\$)
	FROM lockbox.access_log WHERE query LIKE '%/* long within */%'}),
	'1024,' . length($long_do) . ',true,true,true,true',
	'within_query: its first 1024 bytes, its whole length and sha256; query_length: the statement\'s own');
sql(q{ALTER SYSTEM RESET lockbox.access_log_max_query; SELECT pg_reload_conf()});

# the parts are covered by the audit's hashes
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies');
my $fv = sql(q{SELECT min(a.seq) || ',' || min(a.statement_id) FROM lockbox.audit_log a
	JOIN lockbox.access_log l USING (seq) WHERE l.query LIKE '%/* forged value */%'});
my ($fv_seq, $fv_stmt) = split /,/, $fv;
my $fn = sql(q{SELECT min(a.seq) || ',' || min(a.statement_id) FROM lockbox.audit_log a
	JOIN lockbox.access_log l USING (seq) WHERE l.query LIKE '%/* in a function */%'});
my ($fn_seq, $fn_stmt) = split /,/, $fn;
sub tamper
{
	my ($change) = @_;
	# (a superuser editing the catalogs: ALTER TABLE ... DISABLE TRIGGER is refused)
	sql(qq{UPDATE pg_trigger SET tgenabled = 'D' WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc;
		UPDATE pg_class SET relname = relname WHERE oid IN
			(SELECT tgrelid FROM pg_trigger WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc);
		$change;
		UPDATE pg_trigger SET tgenabled = 'A' WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc;
		UPDATE pg_class SET relname = relname WHERE oid IN
			(SELECT tgrelid FROM pg_trigger WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc);});
	return sql(q{SELECT ok || ',' || coalesce(first_bad_seq::text, '') FROM lockbox_verify_audit()});
}
is(tamper("UPDATE lockbox.audit_statement SET parameters = parameters || ' ' WHERE id = $fv_stmt"),
	"false,$fv_seq", 'bound values edited: the row naming them is named');
is(tamper("UPDATE lockbox.audit_statement SET parameters = left(parameters, -1) WHERE id = $fv_stmt"),
	'true,', 'put back, it verifies');
is(tamper("UPDATE lockbox.audit_statement SET within_query = 'SELECT 1' WHERE id = $fn_stmt"),
	"false,$fn_seq", 'a client statement edited: the row naming it is named');
is(tamper("UPDATE lockbox.audit_statement SET within_query = 'SELECT /* the call */ public.cap_note(3)' WHERE id = $fn_stmt"),
	'true,', 'put back, it verifies');
is(tamper("UPDATE lockbox.audit_statement SET within_query = NULL, query = query || E'\\n-- lockbox: within: SELECT /* the call */ public.cap_note(3)' WHERE id = $fn_stmt"),
	"false,$fn_seq", 'nor may it be folded into the text as 1.5 kept it');
is(tamper("UPDATE lockbox.audit_statement SET within_query = 'SELECT /* the call */ public.cap_note(3)', query = regexp_replace(query, E'\\n-- lockbox: within: .*\$', '') WHERE id = $fn_stmt"),
	'true,', 'put back, it verifies');

# ---------------------------------------------------------------------
# PREPARE TRANSACTION
# ---------------------------------------------------------------------
($out, $err) = as_eng(q{BEGIN;
UPDATE /* to prepare */ t SET note = 'prepared' WHERE id = 1;
PREPARE TRANSACTION 'cap';});
like($err, qr/a transaction that reached lockbox-protected table "public.t" cannot be prepared/,
	'a transaction that wrote a protected table is not prepared');
is(sql(q{SELECT count(*) FROM pg_prepared_xacts}), '0', 'none is prepared');
isnt(sql(q{SELECT note FROM t WHERE id = 1}), 'prepared', 'and its write is gone');
is(wait_rows(q{command = 'PREPARE TRANSACTION'}, 1), 1, 'the refusal is recorded');
is( sql(q{SELECT outcome || ':' || request_id || ':' || relation FROM lockbox.access_log
	WHERE command = 'PREPARE TRANSACTION'}),
	"refused:$rw:public.t", 'under the request, for the table');
($out, $err) = as_eng(q{BEGIN; SELECT 1; PREPARE TRANSACTION 'cap2'; COMMIT PREPARED 'cap2';});
is($err, '', 'a transaction that reached no protected table is prepared');

# ---------------------------------------------------------------------
# A cursor whose access ended
# ---------------------------------------------------------------------
($out, $err) = as_eng(qq{BEGIN;
DECLARE c CURSOR FOR SELECT /* cursor */ id FROM t ORDER BY id;
FETCH 1 FROM c;
SELECT lockbox_close($rw);
FETCH 1 FROM c;
ROLLBACK;});
like($err, qr/lockbox access to table "public.t" ended while the statement reading it was open/,
	'a fetch after the access ended is refused');
is(wait_rows(q{query LIKE '%/* cursor */%'}, 2), 2, 'the cursor and the refused fetch are recorded');
is( sql(q{SELECT string_agg(command || ':' || outcome, ',' ORDER BY seq)
	FROM lockbox.access_log WHERE query LIKE '%/* cursor */%'}),
	'SELECT:allowed,FETCH:refused', 'the refused fetch as FETCH, refused');

$node->stop;
done_testing();
