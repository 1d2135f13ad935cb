# DROP EXTENSION lockbox, then CREATE EXTENSION lockbox again in the same
# database (README, "Uninstalling"): records of engineers' statements the
# first installation's worker had not audited yet stay in the spool; the
# second installation starts its request ids afresh, so those records would
# name its requests.  They are never audited by it.
#
# - DROP EXTENSION warns, counting the records it leaves unaudited.
# - The new installation's worker sets them aside, unaudited, as JSON lines
#   in $PGDATA/lockbox_spool/set_aside/, one WARNING with the counts; the
#   spool files go.
# - A pooled session connected through DROP and CREATE (its spool file, of
#   the old installation, still open): its next statement is recorded under
#   the new installation, in a file of its own, and audited under the new
#   request; what it spooled before is set aside with the rest.
# - An engineer's pooled connection left open and idle does not keep the
#   worker making passes; its next statement wakes it.
# - Nothing is audited twice or lost across a restart.
# - A copy adopted (its requests void), then lockbox dropped and created
#   again in it: a connection open meanwhile does not keep the void
#   requests of the former installation.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;

my $node = PostgreSQL::Test::Cluster->new('reinstall');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->start;

our $db = 'shop';
$node->safe_psql('postgres', "CREATE DATABASE $db");
my $dboid = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = '$db'");
my $spool = $node->data_dir . "/lockbox_spool";

sub sql { return $node->safe_psql($db, $_[0]); }

sub as_role
{
	my ($role, $q) = @_;
	return sql("SET SESSION AUTHORIZATION $role; $q");
}

# lockbox in the database, a protected table, and one approved request
# (returns its id)
sub install
{
	sql(q{
CREATE EXTENSION lockbox;
DO $$BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ri_eng') THEN
		CREATE ROLE ri_eng LOGIN IN ROLE lockbox_engineer;
		CREATE ROLE ri_rev LOGIN IN ROLE lockbox_reviewer;
		CREATE ROLE ri_app LOGIN IN ROLE lockbox_approver;
	END IF;
END$$;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'ri_app');
CREATE TABLE IF NOT EXISTS t (tenant text, v int);
GRANT SELECT ON t TO lockbox_engineer;
SELECT lockbox_protect('t', tenant_column => 'tenant');
});
	my $id = as_role('ri_eng', q{SELECT lockbox_request('acme', 'Investigating ticket 42')});
	as_role('ri_rev', "SELECT lockbox_approve($id)");
	as_role('ri_app', "SELECT lockbox_approve($id)");
	return $id;
}

# the worker's audit inserts of engineers' statements refused: records wait
sub hold
{
	sql(q{ALTER TABLE lockbox.audit_log ADD CONSTRAINT hold_access
		  CHECK (event NOT IN ('access', 'refused')) NOT VALID});
}

sql('CREATE TABLE t (tenant text, v int); INSERT INTO t VALUES ($$acme$$, 1), ($$globex$$, 2)');
my $first = install();
is($first, '1', 'the first installation\'s request is 1');
hold();

# a pooled connection: connected through DROP and CREATE EXTENSION
my $pooled = $node->background_psql($db, extra_params => [ '-U', 'ri_eng' ]);
is($pooled->query_safe('SELECT /* old pooled */ count(*) FROM t'), '1',
	'the engineer reads under the first installation\'s request');
is( $node->safe_psql(
		$db, 'SELECT /* old other */ count(*) FROM t',
		extra_params => [ '-U', 'ri_eng' ]),
	'1',
	'and again in a session that ends');
is(sql(q{SELECT count(*) FROM lockbox.access_log}), '0',
	'neither is audited yet (the worker cannot write)');
my $old_epoch = sql('SELECT spool_epoch FROM lockbox.installation');

# --- uninstalling, records still in the spool ---------------------------------
sql('SELECT lockbox_unprotect(relation) FROM lockbox.protected_tables');
my ($ret, $out, $err) = $node->psql($db, 'DROP EXTENSION lockbox');
is($ret, 0, 'DROP EXTENSION lockbox');
like($err,
	qr/WARNING:  DROP EXTENSION lockbox leaves 2 access records unaudited\nDETAIL:  Engineers' statements wait in the spool \(files: 2, in "lockbox_spool\/$dboid"\)/,
	'it warns of the records it leaves unaudited');
ok( $node->poll_query_until(
		'postgres', qq{SELECT count(*) FROM pg_stat_activity
		 WHERE backend_type = 'lockbox worker' AND datname = '$db'}, '0'),
	'the worker exits');
my @left = glob("$spool/$dboid/*");
is(scalar(@left), 2, 'the two spool files stay');

# --- installed again ------------------------------------------------------------
my $log_from = -s $node->logfile;
my $second = install();
is($second, '1', 'the new installation\'s request is 1 too');
isnt(sql('SELECT spool_epoch FROM lockbox.installation'), $old_epoch,
	'the new installation has a spool epoch of its own');
is($pooled->query_safe('SELECT /* new pooled */ count(*) FROM t'), '1',
	'the pooled session reads under the new request');
as_role('ri_eng', 'SELECT /* new other */ count(*) FROM t');

ok( $node->poll_query_until(
		$db, q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%/* new %'}, '2'),
	'the new installation audits its own records');
# the ended session's file at the worker's first pass, the pooled session's
# once it moved on to a new file
my $set_aside = 0;
for (1 .. 100)
{
	$set_aside = 0;
	$set_aside += $1 for (substr(slurp_file($node->logfile), $log_from) =~
		  /WARNING:  lockbox set aside (\d+) access records? of a former installation of lockbox in database "shop", unaudited/g);
	last if $set_aside >= 2;
	select(undef, undef, undef, 0.1);
}
is($set_aside, 2,
	'it sets aside the former installation\'s records, with warnings counting them');
is(sql(q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%/* old %'}), '0',
	'none of them is audited under the new installation\'s request 1');
# (background psql ends a statement with a line of its own, ";")
is(sql(q{SELECT string_agg(regexp_replace(query, '\s*;$', '') || ' ' || request_id, ', ' ORDER BY query)
		   FROM lockbox.access_log}),
	'SELECT /* new other */ count(*) FROM t 1, SELECT /* new pooled */ count(*) FROM t 1',
	'the access log holds exactly the new installation\'s statements');

# the set-aside files: readable, what the former installation's rows would have been
my @aside = glob("$spool/set_aside/$dboid.*.jsonl");
is(scalar(@aside), 2, 'two set-aside files, one per spool file');
my @rows;
for my $f (@aside)
{
	push @rows, map { decode_json($_) } grep { /\S/ } split /\n/, slurp_file($f);
}
is(join(', ', sort map { $_->{detail}{query} =~ s/\s*;$//r } @rows),
	'SELECT /* old other */ count(*) FROM t, SELECT /* old pooled */ count(*) FROM t',
	'they hold the statements of the former installation');
is(join(',', map { "$_->{actor}:$_->{event}:$_->{request_id}:$_->{installation}" } @rows),
	join(',', ("ri_eng:access:1:$old_epoch") x 2),
	'each with its engineer, event, request id and installation');
is(scalar(grep { !/\.jsonl$/ } glob("$spool/$dboid/*")), 1,
	'the former installation\'s spool files are gone; the pooled session\'s new one remains');

# --- an engineer's pooled connection, open and idle ------------------------------
# Its spool file stays open: the worker does not make a pass every second
# for it (1.6 did), its next record wakes the worker.
sleep 2;    # (the passes that followed the statements above)
my $passes = sql('SELECT worker_passes FROM lockbox.stats');
sleep 5;
cmp_ok(sql('SELECT worker_passes FROM lockbox.stats') - $passes, '<=', 1,
	'an idle engineer\'s open connection does not keep the worker busy');
is($pooled->query_safe('SELECT /* pooled later */ count(*) FROM t'), '1',
	'its next statement runs');
ok( $node->poll_query_until(
		$db, q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%/* pooled later %'}, '1'),
	'and is audited at once, the worker woken by its record');

# --- nothing twice ---------------------------------------------------------------
$pooled->quit;
ok( $node->poll_query_until(
		$db, q{SELECT access_queue_depth FROM lockbox.stats}, '0'),
	'the spool empties once the pooled session ends');
$node->restart;
sleep 2;
is(sql(q{SELECT count(*) FROM lockbox.access_log}), '3', 'nothing is audited twice after a restart');
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies');

# --- a copy adopted, then lockbox created again in it --------------------------
# The adoption made request 1 void in the copy; a connection open through
# DROP and CREATE EXTENSION must not keep the former installation's void
# requests: the new installation's request 1 grants access.
$node->safe_psql('postgres', "CREATE DATABASE copy TEMPLATE $db");
is($node->safe_psql('copy', 'SELECT lockbox_adopt_database()'), '1',
	'the copy is adopted, request 1 void in it');
my $in_copy = $node->background_psql('copy', extra_params => [ '-U', 'ri_eng' ], on_error_stop => 0);
$in_copy->query('SELECT /* copy old */ count(*) FROM t');
like($in_copy->{stderr}, qr/no approved lockbox access/, 'an engineer has no access in the copy');
$node->safe_psql('copy', 'SELECT lockbox_unprotect(relation) FROM lockbox.protected_tables');
$node->safe_psql('copy', 'DROP EXTENSION lockbox');
{
	local $db = 'copy';
	is(install(), '1', 'lockbox created again in the copy, its request 1 approved');
}
is($in_copy->query('SELECT /* copy new */ count(*) FROM t'), '1',
	'the open connection reads under the new request 1 (not void: another installation)');
$in_copy->quit;

$node->stop;
done_testing();
