# The worker on a hot standby (README "The worker", "Replicas").
#
# A standby streams from a primary that serves a lockbox database.  While in
# recovery the launcher and a worker run on the standby (they forward
# engineers' statements and end sessions there) but act on no deadline, even
# when one it has replayed passes (the primary is down by then); the view
# still shows the request expired, as it compares with the clock.  Once the
# standby is promoted, its worker acts on the deadline that passed: once, in
# the audit that verifies.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('worker_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$primary->start;

my $db = 'sb';
$primary->safe_psql('postgres', "CREATE DATABASE $db");
$primary->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE sb_eng IN ROLE lockbox_engineer;
CREATE ROLE sb_rev IN ROLE lockbox_reviewer;
SELECT lockbox_add_tenant('acme');
CREATE TABLE acme_data (tenant text);
SELECT lockbox_protect('acme_data', tenant_column => 'tenant');
});
ok( $primary->poll_query_until(
		$db, q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = current_database()},
		'1'),
	'the primary serves the database');

$primary->backup('sb_backup');
my $standby = PostgreSQL::Test::Cluster->new('worker_standby');
$standby->init_from_backup($primary, 'sb_backup', has_streaming => 1);
$standby->start;

# A request whose deadline is moved two seconds ahead by hand: the primary's
# worker, asleep until the 12 hour deadline it knows of, is not woken by this
# UPDATE, and the primary is stopped before the two seconds are over anyway.
my $id = $primary->safe_psql($db,
	q{SET SESSION AUTHORIZATION sb_eng; SELECT lockbox_request('acme', 'deadline passes on the standby')});
$primary->safe_psql($db,
	"UPDATE lockbox.request SET deadline = clock_timestamp() + interval '2 seconds' WHERE id = $id");
$primary->wait_for_catchup($standby);
$primary->stop('fast');

my $sq = sub { $standby->safe_psql($db, shift) };
is($sq->('SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
ok( $standby->poll_query_until(
		$db, "SELECT clock_timestamp() > deadline + interval '1 second' FROM lockbox.request WHERE id = $id"),
	'the replayed deadline passes on the standby');
is($sq->("SELECT state FROM lockbox.request WHERE id = $id"),
	'pending_review', 'the request was not acted on before the primary stopped');
ok( $standby->poll_query_until(
		$db, q{
	SELECT string_agg(backend_type, ',' ORDER BY backend_type) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox launcher'
	    OR (backend_type = 'lockbox worker' AND datname = current_database())},
		'lockbox launcher,lockbox worker'),
	'in recovery the launcher and a worker run on the standby');
is($sq->("SELECT state FROM lockbox.request WHERE id = $id"),
	'pending_review', 'and act on no deadline there');
is($sq->("SELECT state FROM lockbox.requests WHERE id = $id"),
	'expired', 'the view on the standby shows the request expired (the clock)');

$standby->promote;
ok( $standby->poll_query_until(
		$db, q{
	SELECT string_agg(backend_type, ',' ORDER BY backend_type) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox launcher'
	    OR (backend_type = 'lockbox worker' AND datname = current_database())},
		'lockbox launcher,lockbox worker'),
	'after promotion the launcher and a worker serve the new primary');
ok( $standby->poll_query_until(
		$db, "SELECT state FROM lockbox.request WHERE id = $id", 'expired'),
	'the worker expires the request whose deadline passed');
is( $sq->(qq{
	SELECT count(*) || ' ' || min(detail->>'by') FROM lockbox.audit_log
	 WHERE request_id = $id AND event = 'expire'}),
	'1 lockbox worker', 'once, by the lockbox worker');
is($sq->('SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies');

$standby->stop;
done_testing();
