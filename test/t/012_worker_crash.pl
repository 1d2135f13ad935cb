# The worker loses and repeats nothing across crashes and restarts (README
# "The worker").
#
# - kill -9 of a lockbox worker: the worker is first stopped (SIGSTOP, as if
#   hung) while deadlines pass - a stage 1, a stage 2 and an access window -
#   then killed with SIGKILL.  The postmaster restarts every backend; the new
#   worker acts on each passed deadline in its first pass, each once.
# - A server crash (immediate stop) with deadlines that pass while the server
#   is down: after the start, each is acted on at once, once; a further clean
#   restart repeats nothing.
# Each time: exactly one 'expire' or window 'close' audit row and one
# notification to the requester per request, and lockbox_verify_audit() ok.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('worker_crash');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
lockbox.review_timeout = '2s'
lockbox.approval_timeout = '2s'
restart_after_crash = on
});
$node->start;

my $db = 'cr';
LockboxTest::setup($node, $db);
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE cr_eng IN ROLE lockbox_engineer;
CREATE ROLE cr_rev IN ROLE lockbox_reviewer;
CREATE ROLE cr_app IN ROLE lockbox_approver;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'cr_app');
CREATE TABLE acme_data (tenant text);
SELECT lockbox_protect('acme_data', tenant_column => 'tenant');
});

my $worker_q = q{
	SELECT pid FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = current_database()};

sub wait_for_worker
{
	my ($not_pid) = @_;
	$node->poll_query_until($db,
		"SELECT count(*) FROM ($worker_q) w WHERE pid <> $not_pid", '1')
	  or die 'no lockbox worker';
	return sql($worker_q);
}

# Three requests: one left in stage 1, one in stage 2, one approved with a
# window of two seconds.  Their deadlines are all about two seconds away.
sub three_requests
{
	my ($tag) = @_;
	my $stage1 = as_role('cr_eng', "SELECT lockbox_request('acme', '$tag: stage one')");
	my $stage2 = as_role('cr_eng', "SELECT lockbox_request('acme', '$tag: stage two')");
	my $window = as_role('cr_eng',
		"SELECT lockbox_request('acme', '$tag: window', duration => '2 seconds')");
	as_role('cr_rev', "SELECT lockbox_approve($stage2); SELECT lockbox_approve($window)");
	as_role('cr_app', "SELECT lockbox_approve($window)");
	return ($stage1, $stage2, $window);
}

# the state of each request (internal table), and when its deadline passes
sub states
{
	my (@ids) = @_;
	return sql(qq{
	SELECT string_agg(state, ' ' ORDER BY id) FROM lockbox.request
	 WHERE id IN (@{[ join(',', @ids) ]})});
}

sub last_deadline
{
	my (@ids) = @_;
	return sql(qq{
	SELECT extract(epoch FROM max(coalesce(deadline, access_ends_at)))
	  FROM lockbox.request WHERE id IN (@{[ join(',', @ids) ]})});
}

# the acted-on checks, for requests stage 1, stage 2, window
sub check_acted_once
{
	my ($what, $since, @ids) = @_;
	my $list = join(',', @ids);
	ok( $node->poll_query_until(
			$db, qq{
		SELECT string_agg(state || coalesce('/' || close_reason, ''), ' ' ORDER BY id)
		  FROM lockbox.request WHERE id IN ($list)},
			'expired expired closed/window_elapsed'),
		"$what: stage 1 and stage 2 expired, the window closed");
	is( sql(qq{
		SELECT string_agg(n::text, ' ' ORDER BY id) FROM (
		  SELECT r.id, (SELECT count(*) FROM lockbox.audit_log a
		                 WHERE a.request_id = r.id
		                   AND a.event IN ('expire', 'close')
		                   AND a.detail->>'by' = 'lockbox worker') AS n
		    FROM lockbox.request r WHERE r.id IN ($list)) x}),
		'1 1 1',
		"$what: exactly one 'expire' or window 'close' audit row per request");
	is( sql(qq{
		SELECT string_agg(n::text, ' ' ORDER BY id) FROM (
		  SELECT r.id, (SELECT count(*) FROM lockbox.notification n
		                 WHERE n.request_id = r.id AND n.recipient = r.requester
		                   AND n.event IN ('expired', 'closed')) AS n
		    FROM lockbox.request r WHERE r.id IN ($list)) x}),
		'1 1 1',
		"$what: exactly one notification to the requester per request");
	my $late = sql(qq{
		SELECT max(extract(epoch FROM a.at - '$since'::timestamptz))
		  FROM lockbox.audit_log a
		 WHERE a.request_id IN ($list) AND a.event IN ('expire', 'close')});
	ok(defined $late && $late ne '' && $late < 1,
		"$what: all acted on within a second of the new worker's start (${late}s)");
	is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', "$what: the audit verifies");
}

# ---------------------------------------------------------------------------
# kill -9 of the worker, with deadlines passed while it was stopped
# ---------------------------------------------------------------------------
my $old_pid = wait_for_worker(0);
ok( $node->poll_query_until(
		$db, qq{SELECT state FROM pg_stat_activity WHERE pid = $old_pid}, 'idle'),
	'the worker is idle');
kill 'STOP', $old_pid;
my @a = three_requests('kill');
is(states(@a), 'pending_review pending_approval approved', 'three requests, the worker stopped');
my $due = last_deadline(@a);
ok( $node->poll_query_until(
		$db, "SELECT extract(epoch FROM clock_timestamp()) > $due + 0.5"),
	'their deadlines pass');
is(states(@a), 'pending_review pending_approval approved',
	'none is acted on while the worker is stopped');

my $log_offset = -s $node->logfile;
kill 'KILL', $old_pid;
my $new_pid = wait_for_worker($old_pid);
ok($node->log_contains(qr/terminating any other active server processes/, $log_offset),
	'the postmaster restarted every backend after the kill -9');
my $started = sql("SELECT backend_start FROM pg_stat_activity WHERE pid = $new_pid");
check_acted_once('after kill -9', $started, @a);

# ---------------------------------------------------------------------------
# Server crash; the deadlines pass while it is down
# ---------------------------------------------------------------------------
my @b = three_requests('crash');
is(states(@b), 'pending_review pending_approval approved', 'three new requests');
$due = last_deadline(@b);
$node->stop('immediate');
# nothing to poll while the server is down: wait out the deadlines
usleep(100_000) while time() < $due + 0.5;
$node->start;
$new_pid = wait_for_worker(0);
$started = sql("SELECT backend_start FROM pg_stat_activity WHERE pid = $new_pid");
check_acted_once('after a crash', $started, @b);

# ---------------------------------------------------------------------------
# A clean restart repeats nothing
# ---------------------------------------------------------------------------
my $rows = sql('SELECT count(*) FROM lockbox.audit_log');
my $notes = sql('SELECT count(*) FROM lockbox.notification');
$node->restart;
$new_pid = wait_for_worker(0);
ok( $node->poll_query_until(
		$db, qq{
	SELECT last_pass > (SELECT backend_start FROM pg_stat_activity WHERE pid = $new_pid)
	  FROM lockbox.worker WHERE database = current_database()}),
	'after a clean restart the new worker has made a pass');
is(sql('SELECT count(*) FROM lockbox.audit_log'), $rows, 'no audit row is added');
is(sql('SELECT count(*) FROM lockbox.notification'), $notes, 'no notification is added');
is(states(@a, @b),
	'expired expired closed expired expired closed', 'every state stays');
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies');

$node->stop;
done_testing();
