# Holes closed in 1.6, seen from the access log and a copied database.
#
# - a write lockbox let start that its policies then refuse (a row written
#   for, or moved to, another tenant; an upsert onto another tenant's row)
#   is recorded as refused, with the error's message as the reason
# - a transaction whose writes outlive the access that allowed them (the
#   window ends before COMMIT, also within one long statement) does not
#   commit, and its COMMIT is recorded as refused (with
#   lockbox.terminate_sessions off, so that the COMMIT is reached; on, it
#   ends the session a moment after the window, which may come first)
# - CREATE DATABASE ... TEMPLATE: in the copy no request grants access, the
#   lifecycle is refused and the worker does nothing, until
#   lockbox_adopt_database(); the copied requests stay void there, the audit
#   records the copy and still verifies; the original is untouched
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;

my $node = PostgreSQL::Test::Cluster->new('security');
$node->init;
# (sessions are not ended when access ends: the COMMIT itself is tested)
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
lockbox.terminate_sessions = off
});
$node->start;

my $db = 'app';
LockboxTest::setup($node, $db, engineer => 'sec_eng');
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE sec_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE sec_rev IN ROLE lockbox_reviewer;
CREATE ROLE sec_app IN ROLE lockbox_approver;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_tenant('globex');
SELECT lockbox_add_approver('acme', 'sec_app');
CREATE TABLE inv (id int PRIMARY KEY, tenant text NOT NULL, v int NOT NULL);
INSERT INTO inv SELECT g, CASE WHEN g % 2 = 0 THEN 'acme' ELSE 'globex' END, 0
  FROM generate_series(1, 10) g;
SELECT lockbox_protect('inv', tenant_column => 'tenant');
});

# an approved request of sec_eng's for acme, in database $d
sub approved
{
	my ($access, $duration, $d) = @_;
	my $id = as_role('sec_eng',
		qq{SELECT lockbox_request('acme', 'Invoices of acme look wrong',
			access => '$access', duration => '$duration')}, $d);
	as_role('sec_rev', "SELECT lockbox_approve($id)", $d);
	as_role('sec_app', "SELECT lockbox_approve($id)", $d);
	return $id;
}

my $w = approved('write', '4 hours');

# ---------------------------------------------------------------------
# Writes the policies refuse are recorded as refused
# ---------------------------------------------------------------------
my (undef, $err) = as_eng(q{UPDATE inv SET tenant = 'globex' /* moved */ WHERE id = 2});
like($err, qr/new row violates row-level security policy "lockbox_update"/,
	'a row moved to another tenant is refused by the policies');
(undef, $err) = as_eng(q{INSERT INTO inv VALUES (100, 'globex', 0) /* foreign */});
like($err, qr/new row violates row-level security policy "lockbox_insert"/,
	'a row inserted for another tenant is refused');
(undef, $err) = as_eng(q{INSERT INTO inv VALUES (3, 'acme', 0) /* upsert */
	ON CONFLICT (id) DO UPDATE SET v = 1});
like($err, qr/new row violates row-level security policy "lockbox_update" \(USING expression\)/,
	'an upsert onto another tenant\'s row is refused');
my ($out) = as_eng(q{UPDATE inv SET v = v + 1 /* fine */ WHERE id = 2});
is($out, '', 'a write within the tenant runs');
for my $tag ('moved', 'foreign', 'upsert')
{
	is(wait_rows("query LIKE '%/* $tag */%' AND outcome = 'refused'", 1), 1,
		"$tag: recorded as refused");
	is( sql(qq{SELECT request_id || ' ' || relation || ' ' || (reason LIKE '%violates row-level security policy%')
		FROM lockbox.access_log WHERE query LIKE '%/* $tag */%' AND outcome = 'refused'}),
		"$w public.inv true",
		"$tag: under the request, naming the table, with the policy's message as reason");
}
is(wait_rows("query LIKE '%/* fine */%'", 1), 1, 'the write within the tenant: one row');
is(sql(q{SELECT outcome FROM lockbox.access_log WHERE query LIKE '%/* fine */%'}),
	'allowed', 'recorded as allowed');
is(sql(q{SELECT v FROM inv WHERE id = 2}), '1', 'and written');

# ---------------------------------------------------------------------
# Writes do not commit after the window ends
# ---------------------------------------------------------------------
my $short = approved('write', '3 seconds');
(undef, $err) = as_eng(qq{BEGIN;
UPDATE inv SET v = 10 /* late commit */ WHERE id = 4;
SELECT pg_sleep_until(access_ends_at + interval '100 milliseconds')
  FROM lockbox.requests WHERE id = $short;
COMMIT;});
like($err, qr/lockbox access to table "public.inv" under request $short ended before the transaction writing it committed/,
	'COMMIT after the window ended fails');
is(sql(q{SELECT v FROM inv WHERE id = 4}), '0', 'and the write is rolled back');
is(wait_rows(qq{command = 'COMMIT' AND outcome = 'refused' AND request_id = $short}, 1), 1,
	'the refused COMMIT is in the access log, under the request that ended');
$w = approved('write', '4 hours');
$short = approved('write', '3 seconds');
(undef, $err) = as_eng(qq{UPDATE inv SET v = 20 /* long */
	FROM (SELECT pg_sleep_until(access_ends_at + interval '100 milliseconds')
		    FROM lockbox.requests WHERE id = $short) s WHERE id = 6});
like($err, qr/under request $short ended before the transaction writing it committed/,
	'one statement running past the window does not commit either');
is(sql(q{SELECT v FROM inv WHERE id = 6}), '0', 'its write is rolled back');

# ---------------------------------------------------------------------
# CREATE DATABASE ... TEMPLATE
# ---------------------------------------------------------------------
my $copied = approved('read', '4 hours');
my $pending = as_role('sec_eng',
	q{SELECT lockbox_request('acme', 'Invoices of acme look wrong again')});
$node->safe_psql('postgres', "CREATE DATABASE appcopy TEMPLATE $db");
($out) = as_eng('SELECT count(*) FROM inv');
is($out, '5', 'the original: the engineer reads acme\'s rows');
($out, $err) = as_eng('SELECT count(*) FROM inv', 'appcopy');
like($err, qr/no lockbox access to table "public.inv": database "appcopy" is a copy of another database/,
	'the copy: the copied approved request grants nothing');
my ($ret, $o, $e) = $node->psql('appcopy',
	"SET SESSION AUTHORIZATION sec_rev; SELECT lockbox_approve($pending)");
like($e, qr/ERROR:  lockbox in database "appcopy" was copied from another database/,
	'the copy: the lifecycle is refused');
($ret, $o, $e) = $node->psql('appcopy',
	"SET SESSION AUTHORIZATION sec_eng; SELECT lockbox_request('acme', 'Invoices of acme look wrong')");
like($e, qr/was copied from another database/, 'so is a new request');

# An adoption rolled back leaves the copy a copy, also for the backend that
# checked inside it (where the database was its own): identity.c keeps what
# it found only when the row it read was not written by this transaction,
# and the engineers' access cache is dropped when the transaction (or the
# subtransaction) that changed it ends.
my $in_adoption = $node->background_psql('appcopy', on_error_stop => 0);
sub in_adoption
{
	my ($q) = @_;
	$in_adoption->{stderr} = '';
	my $out = $in_adoption->query($q);
	return ($out, $in_adoption->{stderr});
}
($o, $e) = in_adoption('BEGIN; SELECT lockbox_adopt_database()');
is($e, '', 'an adoption begins in a transaction');
($o, $e) = in_adoption(q{SET SESSION AUTHORIZATION sec_eng;
	SELECT lockbox_request('acme', 'made inside an adoption that rolls back')});
like($o, qr/^\d+$/, 'inside it the database is its own: a request is made');
($o, $e) = in_adoption('SELECT count(*) FROM inv');
like($e, qr/ERROR:  no approved lockbox access to table "public.inv"/,
	'and the engineer is refused for want of an approved request, not as in a copy');
unlike($e, qr/is a copy/, '(the refusal does not name the copy)');
($o, $e) = in_adoption('ROLLBACK');
($o, $e) = in_adoption(q{SET SESSION AUTHORIZATION sec_eng;
	SELECT lockbox_request('acme', 'made after the adoption rolled back')});
like($e, qr/ERROR:  lockbox in database "appcopy" was copied from another database/,
	'the adoption rolled back, the same backend refuses the lifecycle again');
($o, $e) = in_adoption('SET SESSION AUTHORIZATION sec_eng; SELECT count(*) FROM inv');
like($e, qr/no lockbox access to table "public.inv": database "appcopy" is a copy of another database/,
	'and refuses the engineer as in a copy');
# the same with the adoption in a subtransaction rolled back
($o, $e) = in_adoption(q{RESET SESSION AUTHORIZATION; BEGIN; SAVEPOINT a;
	SELECT lockbox_adopt_database(); SET SESSION AUTHORIZATION sec_eng; SELECT count(*) FROM inv});
like($e, qr/ERROR:  no approved lockbox access to table "public.inv"/,
	'an adoption in a subtransaction: the engineer is refused as in the database\'s own');
($o, $e) = in_adoption('ROLLBACK TO a; SET SESSION AUTHORIZATION sec_eng; SAVEPOINT b; SELECT count(*) FROM inv');
like($e, qr/no lockbox access to table "public.inv": database "appcopy" is a copy of another database/,
	'the subtransaction rolled back, as in a copy again, in the same transaction');
($o, $e) = in_adoption(q{ROLLBACK TO b; SELECT lockbox_request('acme', 'made after the savepoint rolled back')});
like($e, qr/ERROR:  lockbox in database "appcopy" was copied from another database/,
	'and the lifecycle is refused again');
($o, $e) = in_adoption('ROLLBACK; SELECT datname FROM pg_database WHERE oid = (SELECT datid FROM lockbox.installation)');
is($o, $db, 'lockbox.installation still names the original');
$in_adoption->quit;
my $max = sql('SELECT max(id) FROM lockbox.request', 'appcopy');
is(sql('SELECT lockbox_adopt_database()', 'appcopy'), $max,
	'lockbox_adopt_database makes every request until then void');
is( sql(q{SELECT detail->>'copied_from' = (SELECT oid::text FROM pg_database WHERE datname = 'app')
		AND detail->>'database' = (SELECT oid::text FROM pg_database WHERE datname = 'appcopy')
	FROM lockbox.audit_log WHERE event = 'database_adopted'}, 'appcopy'),
	't', 'the audit records the copy');
is(sql('SELECT ok FROM lockbox_verify_audit()', 'appcopy'), 't', 'and verifies');
($out, $err) = as_eng('SELECT count(*) FROM inv', 'appcopy');
like($err, qr/no approved lockbox access to table "public.inv"/,
	'the copied request still grants nothing in the copy');
is( sql(qq{SELECT string_agg(id || ' ' || state || ' ' || close_reason, ', ' ORDER BY id)
		FROM lockbox.requests WHERE id IN ($copied, $pending)}, 'appcopy'),
	"$copied revoked database_copied, $pending cancelled database_copied",
	'the copied requests still open end: the approved one revoked, the pending one cancelled');
is(sql('SELECT count(*) FROM lockbox.active_access', 'appcopy'), '0',
	'none is shown as active access in the copy');
is(sql('SELECT count(*) FROM lockbox.open_request', 'appcopy'), '0',
	'and the worker has no deadline of theirs');
is( sql(q{SELECT (detail->>'requests_ended')::int >= 2
		AND (detail->>'requests_ended')::int = (SELECT count(*) FROM lockbox.request
			WHERE close_reason = 'database_copied')
	FROM lockbox.audit_log WHERE event = 'database_adopted'}, 'appcopy'),
	't', 'the audit counts them');
($ret, $o, $e) = $node->psql('appcopy',
	"SET SESSION AUTHORIZATION sec_rev; SELECT lockbox_approve($pending)");
like($e, qr/ERROR:  .*cancelled/, 'a copied pending request is not decided on in the copy');
is(sql(qq{SELECT state FROM lockbox.requests WHERE id = $copied}), 'approved',
	'the original\'s requests are as they were');
is(sql(qq{SELECT state FROM lockbox.requests WHERE id = $pending}), 'pending_review',
	'(both)');
approved('read', '4 hours', 'appcopy');
($out) = as_eng('SELECT count(*) FROM inv', 'appcopy');
is($out, '5', 'a request made in the copy grants access there');
($ret, $o, $e) = $node->psql('appcopy', 'SELECT lockbox_adopt_database()');
like($e, qr/this database is lockbox's own, not a copy/, 'adopted once');
($out) = as_eng('SELECT count(*) FROM inv');
is($out, '5', 'the original keeps its access');
is(sql('SELECT count(*) FROM lockbox.audit_log WHERE event = \'database_adopted\''), '0',
	'and its audit');

# a copy of a database without requests (a template's): adopted at once
$node->safe_psql('postgres', 'CREATE DATABASE tmpl');
sql('CREATE EXTENSION lockbox', 'tmpl');
$node->safe_psql('postgres', 'CREATE DATABASE fromtmpl TEMPLATE tmpl');
sql(q{SELECT lockbox_add_tenant('acme')}, 'fromtmpl');
is( sql(q{SELECT detail->>'automatic' || ' ' || (detail->>'requests_void_through')
	FROM lockbox.audit_log WHERE event = 'database_adopted'}, 'fromtmpl'),
	'true 0', 'a copy holding no request is adopted at once, and audited');
is(sql(q{SELECT datid = (SELECT oid FROM pg_database WHERE datname = 'fromtmpl')
	FROM lockbox.installation}, 'fromtmpl'), 't', 'it is lockbox\'s own');

$node->stop;
done_testing();
