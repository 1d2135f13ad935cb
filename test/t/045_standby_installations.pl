# A hot standby while lockbox is created, dropped and created again on the
# primary (README "The worker", "Replicas", "Uninstalling").
#
# - The standby's launcher learns of a CREATE EXTENSION it replays by
#   reading pg_shdepend itself every 10 seconds: no background worker is
#   started for it (1.6 started a "lockbox scan" worker, connected to a
#   database, every 10 seconds); the new database is served within seconds.
# - An engineer's statement on the standby, recorded under an installation
#   the primary has dropped and created again since (replay paused): the
#   primary refuses the records (55000, the standby's backlog shows why) and
#   audits none of them under its new request ids; once the standby has
#   replayed the new installation, its worker sets the file aside,
#   unaudited, as JSON, and forwards the new installation's records as usual.
# - A database dropped on the primary while its engineers' records wait on
#   the standby: once the standby replays the DROP DATABASE, its launcher
#   removes the database's spool (as DROP DATABASE does on the primary), and
#   those records no longer count toward lockbox.standby_backlog_max, which
#   they held full for every database of the standby (1.6, until a restart).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time);

my $primary = PostgreSQL::Test::Cluster->new('inst_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$primary->start;

our $db = 'shop';
$primary->safe_psql('postgres', "CREATE DATABASE $db");
$primary->safe_psql('postgres', q{
CREATE ROLE si_eng LOGIN;
CREATE ROLE si_rev LOGIN;
CREATE ROLE si_app LOGIN;
CREATE ROLE si_sb LOGIN;
});

# lockbox in the database, a protected table, one approved request (its id)
sub install
{
	$primary->safe_psql($db, q{
CREATE EXTENSION lockbox;
GRANT lockbox_engineer TO si_eng;
GRANT lockbox_reviewer TO si_rev;
GRANT lockbox_approver TO si_app;
GRANT lockbox_forwarder TO si_sb;
CREATE TABLE IF NOT EXISTS t (tenant text, v int);
GRANT SELECT ON t TO lockbox_engineer;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'si_app');
SELECT lockbox_protect('t', tenant_column => 'tenant');
});
	my $id = $primary->safe_psql($db,
		q{SET SESSION AUTHORIZATION si_eng; SELECT lockbox_request('acme', 'Investigating ticket 42')});
	$primary->safe_psql($db, "SET SESSION AUTHORIZATION si_rev; SELECT lockbox_approve($id)");
	$primary->safe_psql($db, "SET SESSION AUTHORIZATION si_app; SELECT lockbox_approve($id)");
	return $id;
}

$primary->safe_psql($db, 'CREATE TABLE t (tenant text, v int); INSERT INTO t VALUES ($$acme$$, 1), ($$globex$$, 2)');
is(install(), '1', 'the first installation\'s request is 1');

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('si_sb');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->append_conf('postgresql.conf', 'lockbox.primary_conninfo = \'host='
	  . $primary->host . ' port=' . $primary->port . " user=si_sb'\nlog_min_messages = debug1");
my $sb_from = 0;
$standby->start;
$primary->wait_for_catchup($standby);

my $workers = q{SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity
	WHERE backend_type = 'lockbox worker'};
ok($standby->poll_query_until('postgres', $workers, $db), 'the standby serves the database');

# --- a database that gets lockbox on the primary ------------------------------
$primary->safe_psql('postgres', 'CREATE DATABASE later');
$primary->safe_psql('later', 'CREATE EXTENSION lockbox');
$primary->wait_for_catchup($standby);
my $t0 = time();
ok($standby->poll_query_until('postgres', $workers, "later,$db"),
	'the standby serves a database whose CREATE EXTENSION it replayed');
cmp_ok(time() - $t0, '<', 15, 'within one read of pg_shdepend (every 10 seconds)');
# (and no scan worker: checked at the end, after two more reads at least)

# --- an installation dropped and created again, replay paused ------------------
my $old_epoch = $primary->safe_psql($db, 'SELECT spool_epoch FROM lockbox.installation');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$primary->safe_psql($db, q{
SELECT lockbox_unprotect('t');
DROP EXTENSION lockbox;
});
is(install(), '1', 'the new installation\'s request is 1 too');

my ($ret, $out, $err) = $standby->psql($db, 'SELECT /* standby old */ count(*) FROM t',
	extra_params => [ '-U', 'si_eng' ]);
is($out, '1', 'on the standby, not yet replaying, the engineer reads under the old request');
ok( $standby->poll_query_until(
		$db, q{SELECT last_error LIKE '%of another installation of lockbox%' FROM lockbox.standby_backlog}),
	'the primary refuses its records: the standby\'s backlog says why');
is( $primary->safe_psql(
		$db, q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%standby old%'}),
	'0', 'the primary audits none of them under its new request 1');

my $log_from = -s $standby->logfile;
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$primary->wait_for_catchup($standby);
ok($standby->wait_for_log(
		qr/WARNING:  lockbox set aside 1 access record of a former installation of lockbox in database "shop", unaudited/,
		$log_from),
	'once the standby replayed the new installation, its worker sets the record aside');
my $dboid = $primary->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = '$db'");
my @aside = glob($standby->data_dir . "/lockbox_spool/set_aside/$dboid.*.jsonl");
is(scalar(@aside), 1, 'in one file');
my $row = decode_json((split /\n/, slurp_file($aside[0]))[0]);
is( join(' ', $row->{actor}, $row->{event}, $row->{request_id}, $row->{detail}{node},
		$row->{installation} == $old_epoch ? 'old' : 'other'),
	'si_eng access 1 si_sb old',
	'as JSON: the engineer, the old request, the standby, the old installation');
like($row->{detail}{query}, qr/standby old/, 'with the statement');

($ret, $out, $err) = $standby->psql($db, 'SELECT /* standby new */ count(*) FROM t',
	extra_params => [ '-U', 'si_eng' ]);
is($out, '1', 'the engineer reads on the standby under the new request');
ok( $primary->poll_query_until(
		$db, q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%standby new%' AND node = 'si_sb'}, '1'),
	'the new installation\'s record is forwarded and audited');
ok($standby->poll_query_until($db, q{SELECT last_error IS NULL OR pending_files = 0 FROM lockbox.standby_backlog}),
	'the standby has nothing left waiting');
is( $primary->safe_psql(
		$db, q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%standby old%'}),
	'0', 'and the former installation\'s record was never audited');

# --- a database dropped on the primary while its records wait on the standby ---
$primary->safe_psql('postgres', 'CREATE DATABASE tmp');
{
	local $db = 'tmp';
	install();
}
my $tmpoid = $primary->safe_psql('postgres', q{SELECT oid FROM pg_database WHERE datname = 'tmp'});
$primary->wait_for_catchup($standby);
ok($standby->poll_query_until('postgres', $workers, "later,shop,tmp"),
	'the standby serves the new database');
# records wait on the standby (no primary to forward to), the bound low
$standby->append_conf('postgresql.conf', "lockbox.primary_conninfo = ''\nlockbox.standby_backlog_max = '1kB'");
$standby->reload;
ok($standby->poll_query_until('postgres', 'SHOW lockbox.standby_backlog_max', '1kB'),
	'the standby\'s backlog bound is 1kB');
$standby->psql('tmp', join('', map { "SELECT /* tmp $_ */ count(*) FROM t;\n" } 1 .. 12),
	extra_params => [ '-U', 'si_eng' ]);
ok(-d $standby->data_dir . "/lockbox_spool/$tmpoid", 'the records wait in the standby\'s spool');
($ret, $out, $err) = $standby->psql($db, 'SELECT count(*) FROM t', extra_params => [ '-U', 'si_eng' ]);
like($err, qr/the standby's backlog of lockbox access records for the primary is full/,
	'the backlog is full: engineers are refused in the other database too');

$log_from = -s $standby->logfile;
$primary->safe_psql('postgres', 'DROP DATABASE tmp');
$primary->wait_for_catchup($standby);
ok($standby->wait_for_log(qr/removed the lockbox spool of dropped database $tmpoid/, $log_from),
	'once the standby replayed DROP DATABASE, its launcher removes the database\'s spool, as the primary did');
ok(!-d $standby->data_dir . "/lockbox_spool/$tmpoid", 'it is gone');
ok( $standby->poll_query_until(
		$db, q{SELECT pending_bytes FROM lockbox.standby_backlog}, '0'),
	'nothing waits in the other database');
($ret, $out, $err) = $standby->psql($db, 'SELECT count(*) FROM t', extra_params => [ '-U', 'si_eng' ]);
is($out, '1', 'and its engineer reads again: the dropped database\'s records no longer count toward the bound');

# --- two more reads of pg_shdepend since the standby served "later" ------------
my $ran = time() - $t0;
sleep(int(25 - $ran) + 1) if $ran < 25;
unlike(slurp_file($standby->logfile, $sb_from),
	qr/background worker "lockbox scan|background worker process "lockbox scan/,
	sprintf('no background worker was started to read pg_shdepend (%d seconds since the standby served "later")',
		time() - $t0));

$standby->stop;
$primary->stop;
done_testing();
