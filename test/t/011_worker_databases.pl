# One lockbox worker per database where the extension is created (README
# "The worker").
#
# - Two databases are served at once: each has a "lockbox worker" in
#   pg_stat_activity, lockbox.worker lists both as running with those pids,
#   and each worker expires its own database's requests.
# - CREATE EXTENSION lockbox in a new database is served within a couple of
#   seconds; DROP EXTENSION makes that database's worker exit, and a new
#   CREATE EXTENSION brings it back.
# - DROP DATABASE of a served database completes promptly (and the other
#   database's worker is untouched).
# - Settings reload on SIGHUP: after ALTER SYSTEM + pg_reload_conf(), a
#   session that was already open, and a new one, review with the new
#   lockbox.approval_timeout; the deadline fixed before stays.
# - lockbox.worker shows the next deadline of a database.
# - pg_ctl stop -m fast completes promptly with workers running.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('worker_databases');
LockboxTest::setup($node, 'db1');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
lockbox.review_timeout = '2s'
});
$node->start;

sub workers_in
{
	my (@dbs) = @_;
	my $list = join(', ', map { "'$_'" } @dbs);
	return qq{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname IN ($list)};
}

sub worker_pid
{
	my ($db) = @_;
	return $node->safe_psql('postgres', qq{
	SELECT pid FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = '$db'});
}

# roles are cluster-wide: created with the first database
my $roles_made = 0;

sub setup_db
{
	my ($db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	my $roles = $roles_made++ ? '' : q{
CREATE ROLE wd_eng IN ROLE lockbox_engineer;
CREATE ROLE wd_rev IN ROLE lockbox_reviewer;
CREATE ROLE wd_app IN ROLE lockbox_approver;};
	$node->safe_psql(
		$db, qq{
CREATE EXTENSION lockbox;
$roles
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'wd_app');
CREATE TABLE acme_data (tenant text);
SELECT lockbox_protect('acme_data', tenant_column => 'tenant');
});
}

# ---------------------------------------------------------------------------
# Two databases served at once
# ---------------------------------------------------------------------------
setup_db('db1');
setup_db('db2');
ok($node->poll_query_until('postgres', workers_in('db1', 'db2'), '2'),
	'a lockbox worker runs in each of db1 and db2');
is( $node->safe_psql(
		'db1', q{
	SELECT string_agg(database || ':' || state, ' ' ORDER BY database)
	  FROM lockbox.worker WHERE database IN ('db1', 'db2')}),
	'db1:running db2:running',
	'lockbox.worker lists both databases as running');
is( $node->safe_psql(
		'db2', q{
	SELECT count(*) FROM lockbox.worker w
	  JOIN pg_stat_activity a ON a.pid = w.pid
	 WHERE a.backend_type = 'lockbox worker' AND a.datname = w.database
	   AND w.database IN ('db1', 'db2')}),
	'2',
	'with the pids of the workers pg_stat_activity shows for those databases');

# each worker keeps its own database's deadlines (review_timeout is 2s)
my %req;
for my $db ('db1', 'db2')
{
	$req{$db} = as_role('wd_eng',
		"SELECT lockbox_request('acme', 'a case in database $db')", $db);
}
for my $db ('db1', 'db2')
{
	ok( $node->poll_query_until(
			$db, "SELECT state FROM lockbox.request WHERE id = $req{$db}",
			'expired'),
		"the request in $db expires");
	is( $node->safe_psql(
			$db, qq{
		SELECT count(*) || ' ' || min(detail->>'by') FROM lockbox.audit_log
		 WHERE request_id = $req{$db} AND event = 'expire'}),
		'1 lockbox worker',
		"recorded once, by the lockbox worker of $db");
}
$node->safe_psql('postgres', q{ALTER SYSTEM SET lockbox.review_timeout = '1h'});
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok( $node->poll_query_until(
		'db1', q{SELECT current_setting('lockbox.review_timeout')}, '1h'),
	'review_timeout is 1h from here on');

# ---------------------------------------------------------------------------
# CREATE EXTENSION picked up, DROP EXTENSION followed
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE db3');
my $t0 = time();
$node->safe_psql('db3', 'CREATE EXTENSION lockbox');
ok($node->poll_query_until('postgres', workers_in('db3'), '1'),
	'CREATE EXTENSION in a new database: a worker serves it');
my $took = time() - $t0;
cmp_ok($took, '<', 3,
	sprintf('within a couple of seconds (%.1fs)', $took));
is( $node->safe_psql(
		'db3', q{SELECT state FROM lockbox.worker WHERE database = 'db3'}),
	'running', 'lockbox.worker shows db3 running');

$t0 = time();
$node->safe_psql('db3', 'DROP EXTENSION lockbox');
ok($node->poll_query_until('postgres', workers_in('db3'), '0'),
	'DROP EXTENSION: the worker of db3 exits');
$took = time() - $t0;
cmp_ok($took, '<', 3, sprintf('promptly (%.1fs)', $took));
is( $node->safe_psql(
		'db1', q{SELECT count(*) FROM lockbox.worker WHERE database = 'db3' AND state = 'running'}),
	'0', 'lockbox.worker no longer shows db3 running');

$t0 = time();
$node->safe_psql('db3', 'CREATE EXTENSION lockbox');
ok($node->poll_query_until('postgres', workers_in('db3'), '1'),
	'CREATE EXTENSION again: db3 is served again');
$took = time() - $t0;
cmp_ok($took, '<', 3, sprintf('within a couple of seconds (%.1fs)', $took));

# ---------------------------------------------------------------------------
# DROP DATABASE of a served database
# ---------------------------------------------------------------------------
my $db1_pid = worker_pid('db1');
ok($node->poll_query_until('postgres', workers_in('db2'), '1'),
	'db2 is served');
$t0 = time();
my ($ret, $out, $err) =
  $node->psql('postgres', 'DROP DATABASE db2', timeout => 60);
$took = time() - $t0;
is($ret, 0, 'DROP DATABASE of a served database succeeds') or diag($err);
cmp_ok($took, '<', 5, sprintf('and does not hang (%.1fs)', $took));
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_database WHERE datname = 'db2'}),
	'0', 'db2 is gone');
is($node->safe_psql('postgres', workers_in('db2')), '0', 'and so is its worker');
is(worker_pid('db1'), $db1_pid, 'the worker of db1 is untouched');

# ---------------------------------------------------------------------------
# SIGHUP: lockbox.approval_timeout changes for the next review
# ---------------------------------------------------------------------------
my $before = as_role('wd_eng',
	q{SELECT lockbox_request('acme', 'reviewed before the reload')});
my $after = as_role('wd_eng',
	q{SELECT lockbox_request('acme', 'reviewed after the reload')});
my $after2 = as_role('wd_eng',
	q{SELECT lockbox_request('acme', 'reviewed in a new session')});

# a reviewer's session, open across the reload
my $rev = $node->background_psql('db1');
$rev->query_safe('SET SESSION AUTHORIZATION wd_rev');
is($rev->query_safe("SELECT lockbox_approve($before)"),
	'pending_approval', 'a request reviewed under the default approval_timeout');

$node->safe_psql('db1', q{ALTER SYSTEM SET lockbox.approval_timeout = '7min'});
$node->safe_psql('db1', 'SELECT pg_reload_conf()');
# the open session reloads when it gets the SIGHUP
my $seen = '';
my $until = time() + $PostgreSQL::Test::Utils::timeout_default;
while (time() < $until)
{
	$seen = $rev->query_safe(q{SELECT current_setting('lockbox.approval_timeout')});
	last if $seen eq '7min';
	usleep(50_000);
}
is($seen, '7min', 'the open session sees the new approval_timeout');
is($rev->query_safe("SELECT lockbox_approve($after)"),
	'pending_approval', 'a request reviewed after the reload, in that session');
$rev->quit;
ok( $node->poll_query_until(
		'db1', q{SELECT current_setting('lockbox.approval_timeout')}, '7min'),
	'new sessions see it too');
is(as_role('wd_rev', "SELECT lockbox_approve($after2)"),
	'pending_approval', 'a request reviewed in a new session');
is( $node->safe_psql(
		'db1', qq{
	SELECT string_agg((deadline - reviewed_at)::text, ' ' ORDER BY id)
	  FROM lockbox.request WHERE id IN ($before, $after, $after2)}),
	'12:00:00 00:07:00 00:07:00',
	'deadline - reviewed_at: 12h before the reload, 7 minutes after; the earlier deadline stays');

# lockbox.worker: the next deadline of db1 is the earliest pending one
ok( $node->poll_query_until(
		'db1', qq{
	SELECT w.next_deadline = r.deadline AND w.last_pass IS NOT NULL
	  FROM lockbox.worker w, lockbox.request r
	 WHERE w.database = 'db1' AND r.id = $after}),
	'lockbox.worker shows db1\'s next deadline and a last pass');

# ---------------------------------------------------------------------------
# Fast shutdown with workers running
# ---------------------------------------------------------------------------
ok($node->poll_query_until('postgres', workers_in('db1', 'db3'), '2'),
	'workers run in db1 and db3');
$t0 = time();
$node->stop('fast');
$took = time() - $t0;
cmp_ok($took, '<', 5, sprintf('pg_ctl stop -m fast completes promptly (%.1fs)', $took));

done_testing();
