# What a DBA meets running lockbox next to other extensions (README, "The
# worker", "Settings", "Upgrading"):
#
# - A database's worker whose passes keep failing (its objects are of an
#   older version than the library, as between the restart and ALTER
#   EXTENSION lockbox UPDATE) logs each failure once per pause, the pause
#   growing to a minute: not a line per millisecond.  After the update it
#   works again at once, not at the end of its pause.  lockbox.worker shows
#   it failing meanwhile.
# - lockbox.default_access_duration and lockbox.max_access_duration raised
#   together in postgresql.conf take effect together at the reload, in
#   whatever order the file lists them; a default above the maximum (as a
#   configuration file may set them at startup) gives a request that names
#   no duration the maximum, with a notice, rather than refusing it; the
#   server log warns of it once at the start and at each reload, not once
#   per request; ALTER SYSTEM RESET ALL that would leave them so is refused.
# - lockbox.anchor_interval lowered at a reload takes effect at once.
# - The worker's ANALYZE of lockbox.audit_log neither waits for a manual
#   VACUUM of an audit partition nor analyzes the partitions.
# - A clean shutdown (pg_ctl stop) ends lockbox's launcher and idle workers
#   without a FATAL line each.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use Time::HiRes qw(time sleep);

my $node = PostgreSQL::Test::Cluster->new('operations');
LockboxTest::setup($node, 'app');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
max_worker_processes = 16
});
$node->start;

sub log_since
{
	my ($from) = @_;
	return slurp_file($node->logfile, $from);
}

# --- a failing worker backs off -------------------------------------------
sql('CREATE DATABASE app', 'postgres');
sql('CREATE EXTENSION lockbox');
sql('CREATE DATABASE old', 'postgres');
# the database's owner may set exit_on_error: the worker ignores it (an
# error of a pass made a FATAL, and a new worker every second)
sql('ALTER DATABASE old SET exit_on_error = on', 'postgres');
my $from = -s $node->logfile;
sql(q{CREATE EXTENSION lockbox VERSION '1.4'}, 'old');
my $mismatch = qr/lockbox's objects in database "old" are version 1\.4/;
ok($node->wait_for_log($mismatch, $from), 'the worker reports the old objects');
sleep 5;
my @lines = (log_since($from) =~ /ERROR:  $mismatch/g);
cmp_ok(scalar(@lines), '<=', 5,
	'a worker whose passes fail logs once per pause (1s, 2s, 4s ...)');
unlike(log_since($from), qr/FATAL:  $mismatch/,
	'the failure ends no worker (exit_on_error of the database ignored)');

# lockbox.worker, read in another database, says so
is( sql(q{SELECT state FROM lockbox.worker WHERE database = 'old'}),
	'failing', 'lockbox.worker shows the worker failing');

# the fourth failure (after pauses of 1, 2 and 4 seconds) starts a pause of
# 8 seconds: ALTER EXTENSION lockbox UPDATE ends it at once
my $deadline = time() + 60;
sleep 0.1 while (() = log_since($from) =~ /ERROR:  $mismatch/g) < 4 && time() < $deadline;
my $t0 = time();
sql('ALTER EXTENSION lockbox UPDATE', 'old');
ok( $node->poll_query_until(
		'old',
		q{SELECT last_pass IS NOT NULL FROM lockbox.worker WHERE database = 'old'}),
	'after ALTER EXTENSION lockbox UPDATE its passes work');
cmp_ok(time() - $t0, '<', 6, 'at once, not at the end of its pause (8 s)');
is(sql(q{SELECT state FROM lockbox.worker WHERE database = 'old'}),
	'running', 'and running again');

# --- the default and the longest window, changed together ------------------
$node->append_conf(
	'postgresql.conf', q{
lockbox.default_access_duration = '10h'
lockbox.max_access_duration = '12h'
});
$from = -s $node->logfile;
$node->reload;
ok($node->poll_query_until('app', 'SHOW lockbox.max_access_duration', '12h'),
	'the longest window is raised at the reload');
is(sql('SHOW lockbox.default_access_duration'),
	'10h', 'and the default listed before it too');
unlike(log_since($from), qr/invalid value for parameter "lockbox/,
	'the reload refuses neither');

# a configuration that puts the default above the maximum at startup
$node->append_conf(
	'postgresql.conf', q{
lockbox.max_access_duration = '2h'
});
$from = -s $node->logfile;
$node->restart;
is(sql('SHOW lockbox.default_access_duration'), '10h', 'default 10h');
is(sql('SHOW lockbox.max_access_duration'), '2h', 'maximum 2h');
sql(q{
CREATE ROLE erin LOGIN;
GRANT lockbox_engineer TO erin;
CREATE TABLE t (id int, tenant text);
SELECT lockbox_add_tenant('acme');
SELECT lockbox_protect('t', tenant_column => 'tenant');
});
my ($ret, $out, $err) = $node->psql('app',
	q{SET SESSION AUTHORIZATION erin;
	  SELECT lockbox_request('acme', 'Customer reports an error in totals')});
is($ret, 0, 'a request naming no duration is filed');
like(
	$err,
	qr/NOTICE:  lockbox.default_access_duration \(10h\) exceeds lockbox.max_access_duration \(2h\)/,
	'with a notice to its engineer naming both settings');
is(sql(q{SELECT duration FROM lockbox.requests}),
	'02:00:00', 'for the longest window allowed');
($ret, $out, $err) = $node->psql('app',
	q{SET SESSION AUTHORIZATION erin;
	  SELECT lockbox_request('acme', 'Customer reports an error in totals', duration => '3h')});
like($err, qr/duration 03:00:00 exceeds lockbox.max_access_duration/,
	'a longer duration asked for is still refused');

# the server log has it once, at the start (and at each reload while it
# lasts), from the launcher: not once per request
sql(q{SET SESSION AUTHORIZATION erin;
	  SELECT lockbox_cancel(lockbox_request('acme', 'Customer reports an error in totals'))});
ok( $node->wait_for_log(
		qr/WARNING:  lockbox.default_access_duration \(10h\) exceeds lockbox.max_access_duration \(2h\)/,
		$from),
	'the server log names both settings');
my @window_lines = (log_since($from) =~ /lockbox.default_access_duration \(10h\) exceeds/g);
is(scalar(@window_lines), 1, 'once, after two requests');
$from = -s $node->logfile;
$node->reload;
ok( $node->wait_for_log(
		qr/WARNING:  lockbox.default_access_duration \(10h\) exceeds lockbox.max_access_duration \(2h\)/,
		$from),
	'and again at a reload');

# ALTER SYSTEM RESET ALL would leave them so: refused, naming both (the
# values the configuration file gives them), as SET, RESET and SET ... TO
# DEFAULT of either are
($ret, $out, $err) = $node->psql('app', 'ALTER SYSTEM RESET ALL');
like(
	$err,
	qr/ERROR:  invalid value for parameter "lockbox.default_access_duration": "10h"\nDETAIL:  lockbox.default_access_duration \(10h, as ALTER SYSTEM RESET ALL would leave it\) may not exceed lockbox.max_access_duration \(2h\)\./,
	'ALTER SYSTEM RESET ALL that would leave the default above the maximum is refused');

# --- who the worker is ----------------------------------------------------
# The database's owner, no superuser, sets who every session of it is: the
# worker stays the bootstrap superuser it connected as, and its audit rows
# (here a window's end) do not name the role the owner chose.
my $bootstrap = sql('SELECT rolname FROM pg_authid WHERE oid = 10', 'postgres');
sql(q{
CREATE ROLE owner_bob LOGIN;
ALTER DATABASE app OWNER TO owner_bob;
CREATE ROLE mia LOGIN IN ROLE lockbox_reviewer;
CREATE ROLE ada LOGIN IN ROLE lockbox_approver;
SELECT lockbox_add_approver('acme', 'ada');
SET SESSION AUTHORIZATION owner_bob;
ALTER DATABASE app SET session_authorization = 'erin';
ALTER DATABASE app SET role = 'ada';
});
my $pid = sql(q{SELECT pid FROM pg_stat_activity
	   WHERE backend_type = 'lockbox worker' AND datname = 'app'}, 'postgres');
sql("SELECT pg_terminate_backend($pid)", 'postgres');
ok( $node->poll_query_until(
		'postgres',
		qq{SELECT count(*) FROM pg_stat_activity
		   WHERE backend_type = 'lockbox worker' AND datname = 'app' AND pid <> $pid},
		'1'),
	'the worker is started again');
# (the worker took the database's settings when it started)
sql('ALTER DATABASE app RESET ALL', 'postgres');
sql(q{
SET SESSION AUTHORIZATION erin;
SELECT lockbox_request('acme', 'Customer reports an error in totals', duration => '1 second');
SET SESSION AUTHORIZATION mia;
SELECT lockbox_approve(id, 'Scope is right') FROM lockbox.requests WHERE state = 'pending_review';
SET SESSION AUTHORIZATION ada;
SELECT lockbox_approve(id, 'Go ahead') FROM lockbox.requests WHERE state = 'pending_approval';
});
ok( $node->poll_query_until(
		'app',
		q{SELECT count(*) FROM lockbox.audit
		   WHERE event = 'close' AND detail->>'by' = 'lockbox worker'}, '1'),
	'the worker closes the request at the window\'s end');
is( sql(q{SELECT actor || ' ' || session_user_name FROM lockbox.audit
		   WHERE event = 'close' AND detail->>'by' = 'lockbox worker'}),
	"$bootstrap $bootstrap",
	'its audit row names the bootstrap superuser, not the roles the owner set');

# --- lockbox.anchor_interval lowered at a reload --------------------------
# counts from the last anchor at once, not from the next one
sql(q{ALTER SYSTEM SET lockbox.anchor_interval = '1h'}, 'postgres');
sql('SELECT pg_reload_conf()', 'postgres');
ok($node->poll_query_until('app', 'SHOW lockbox.anchor_interval', '1h'),
	'an anchor every hour');
$from = -s $node->logfile;
$pid = sql(q{SELECT pid FROM pg_stat_activity
	   WHERE backend_type = 'lockbox worker' AND datname = 'app'}, 'postgres');
sql("SELECT pg_terminate_backend($pid)", 'postgres');
ok($node->wait_for_log(qr/LOCKBOX: \{"event": "anchor", [^\n]*"database": "app"/, $from),
	'a new worker writes its first anchor at once');
sql(q{SELECT lockbox_add_tenant('initech')});
my $seq = sql(q{SELECT max(seq) FROM lockbox.audit});
$from = -s $node->logfile;
sql(q{ALTER SYSTEM SET lockbox.anchor_interval = '1s'}, 'postgres');
sql('SELECT pg_reload_conf()', 'postgres');
my $t1 = time();
ok( $node->wait_for_log(
		qr/LOCKBOX: \{"event": "anchor", [^\n]*"database": "app", "anchors": \[[^\]]*"seq": $seq\b/,
		$from),
	'lowered to a second at a reload: the next anchor names the new row');
cmp_ok(time() - $t1, '<', 10, 'within seconds, not an hour after the last');
sql('ALTER SYSTEM RESET lockbox.anchor_interval', 'postgres');
sql('SELECT pg_reload_conf()', 'postgres');

# --- the worker's ANALYZE of the audit log --------------------------------
# A manual VACUUM of an audit partition (a pg_cron job, say) holds it in
# SHARE UPDATE EXCLUSIVE mode for as long as it runs: the worker's ANALYZE
# of lockbox.audit_log gathers the whole log's statistics meanwhile, without
# waiting for it (its deadlines would wait too), and leaves the partitions'
# own statistics to autovacuum.
ok( $node->poll_query_until(
		'app', q{SELECT count(*) > 1 FROM pg_inherits
		          WHERE inhparent = 'lockbox.audit_log'::regclass}),
	'the audit log has its monthly partitions');
my $part = sql(q{SELECT inhrelid::regclass FROM pg_inherits
	   WHERE inhparent = 'lockbox.audit_log'::regclass
	     AND inhrelid <> 'lockbox.audit_log_default'::regclass
	   ORDER BY 1 LIMIT 1});
my $part_analyzes = q{SELECT sum(analyze_count) FROM pg_stat_user_tables
	   WHERE relid IN (SELECT inhrelid FROM pg_inherits
	                    WHERE inhparent = 'lockbox.audit_log'::regclass)};
my $analyzed_before = sql($part_analyzes);
my $vacuum = $node->background_psql('app');
$vacuum->query_safe("BEGIN; LOCK TABLE $part IN SHARE UPDATE EXCLUSIVE MODE");
# no statistics of the whole log: a new worker analyzes it at its first pass
sql(q{DELETE FROM pg_statistic WHERE starelid = 'lockbox.audit_log'::regclass});
$pid = sql(q{SELECT pid FROM pg_stat_activity
	   WHERE backend_type = 'lockbox worker' AND datname = 'app'}, 'postgres');
sql("SELECT pg_terminate_backend($pid)", 'postgres');
ok( $node->poll_query_until(
		'app', q{SELECT count(*) > 0 FROM pg_statistic
		          WHERE starelid = 'lockbox.audit_log'::regclass AND stainherit}),
	'the worker analyzes the audit log while a partition is being vacuumed');
is( sql(q{SELECT count(*) FROM pg_stat_activity
		   WHERE backend_type = 'lockbox worker' AND wait_event_type = 'Lock'}),
	'0', 'without waiting for a lock');
is(sql($part_analyzes), $analyzed_before,
	'and without analyzing the partitions (autovacuum does)');
$vacuum->query_safe('COMMIT');
$vacuum->quit;

# --- a clean shutdown ------------------------------------------------------
ok($node->poll_query_until('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'lockbox worker'}, '2'),
	'both databases served');
# between passes (a worker in the middle of one still ends with a FATAL)
ok($node->poll_query_until('postgres',
		q{SELECT bool_and(wait_event IS NOT DISTINCT FROM 'Extension') FROM pg_stat_activity
		   WHERE backend_type IN ('lockbox worker', 'lockbox launcher')}),
	'lockbox\'s processes wait between passes');
$from = -s $node->logfile;
$node->stop('fast');
my $stop_log = log_since($from);
like($stop_log, qr/database system is shut down/, 'the server stopped');
unlike($stop_log, qr/FATAL:  terminating background worker "lockbox/,
	'lockbox\'s launcher and workers stop without a FATAL line');

done_testing();
