# lockbox needs shared_preload_libraries (README "The worker").
#
# Without it, CREATE EXTENSION lockbox fails with the contract's message and a
# hint, and leaves nothing behind.  With it, CREATE EXTENSION succeeds, and
# within a few seconds the launcher and a "lockbox worker" backend serving
# that database show in pg_stat_activity; a database without the extension
# keeps no worker.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('preload');
$node->init;
$node->start;

# --- not preloaded -------------------------------------------------------
# Twice in one session: a failed load must not leave a half-initialised
# library that lets the second attempt through.
my ($ret, $out, $err) = $node->psql('postgres',
	"CREATE EXTENSION lockbox;\nCREATE EXTENSION lockbox;",
	on_error_stop => 0);
my @errors = ($err =~ /^(?:psql:\S+ )?ERROR:  (.*)$/mg);
is(scalar(@errors), 2, 'both CREATE EXTENSION attempts fail without shared_preload_libraries')
  or diag($err);
is($errors[0], 'lockbox must be loaded via shared_preload_libraries',
	'the error says lockbox must be preloaded');
is($errors[1], 'lockbox must be loaded via shared_preload_libraries',
	'so does the second attempt in the same session');
like($err, qr/^HINT:  .*shared_preload_libraries.*$/m,
	'a hint says to add lockbox to shared_preload_libraries');

is( $node->safe_psql(
		'postgres', q{
	SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'lockbox')
		 + (SELECT count(*) FROM pg_namespace WHERE nspname = 'lockbox')
		 + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'lockbox%')}),
	'0',
	'the failed CREATE EXTENSION leaves no extension, schema or function');
is( $node->safe_psql(
		'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'lockbox%'}),
	'0',
	'no lockbox process runs without shared_preload_libraries');

# --- preloaded ------------------------------------------------------------
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->restart;
$node->safe_psql('postgres', 'CREATE DATABASE lbdb');

ok( $node->poll_query_until(
		'postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'lockbox launcher'},
		'1'),
	'the lockbox launcher runs once lockbox is preloaded');

my $start = time();
$node->safe_psql('lbdb', 'CREATE EXTENSION lockbox');
pass('CREATE EXTENSION lockbox succeeds once lockbox is preloaded');

ok( $node->poll_query_until(
		'lbdb', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = 'lbdb'},
		'1'),
	'a lockbox worker serves the database');
my $elapsed = time() - $start;
cmp_ok($elapsed, '<', 5,
	sprintf('the worker appeared within a few seconds (%.1fs)', $elapsed));

# databases without the extension keep no worker
ok( $node->poll_query_until(
		'postgres', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname IS DISTINCT FROM 'lbdb'},
		'0'),
	'no lockbox worker stays in a database without the extension');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = 'lbdb'}),
	'1',
	'exactly one lockbox worker serves the database');

$node->stop;
done_testing();
