# Notifications reach listeners (README "Notifications"), and a database
# served by a worker can be dropped.
#
# A session that LISTENs on channel "lockbox" receives one notification per
# row of lockbox.notifications, with a JSON payload naming at least event,
# request_id, tenant and state.  They are sent by the database's lockbox
# worker (their sender's PID is the worker's), only once the transition has
# committed: while a transition's transaction is open, a later committed
# transition's notification arrives and its own does not; it arrives after
# the commit; a rolled-back transition sends nothing.  A transition's
# notifications reach the worker through the database's relay ring at
# commit: a savepoint rolled back takes back only its own; while the worker
# is stopped, the ring fills and the rest go into lockbox.notify_outbox, and
# once it runs again every one of them is heard once.
#
# A forged NOTIFY lockbox is told apart: its sender is not the worker, and
# its payload matches no row.
#
# DROP DATABASE of a database a worker serves completes within seconds.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use JSON::PP;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('notify');
LockboxTest::setup($node, 'nt');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE nt');
$node->safe_psql(
	'nt', q{
CREATE EXTENSION lockbox;
CREATE ROLE nt_eng IN ROLE lockbox_engineer;
CREATE ROLE nt_rev IN ROLE lockbox_reviewer;
CREATE ROLE nt_app1 IN ROLE lockbox_approver;
CREATE ROLE nt_app2 IN ROLE lockbox_approver;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'nt_app1');
SELECT lockbox_add_approver('acme', 'nt_app2');
CREATE TABLE acme_data (tenant text);
SELECT lockbox_protect('acme_data', tenant_column => 'tenant');
});
ok( $node->poll_query_until(
		'nt', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = 'nt'},
		'1'),
	'a lockbox worker serves the database');
my $worker_pid = $node->safe_psql('nt',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'lockbox worker' AND datname = 'nt'});

# --- the listener -------------------------------------------------------------
my $listener = $node->background_psql('nt');
$listener->query_safe('LISTEN lockbox');
my @received;    # { payload => decoded JSON, pid => sender }

# Collect what psql prints for notifications, which it does after each
# command, until $done->() holds or the timeout passes.
sub receive_until
{
	my ($done) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (1)
	{
		my $out = $listener->query_safe('SELECT 1');
		while ($out =~
			/^Asynchronous notification "lockbox" with payload "(.*)" received from server process with PID (\d+)\.$/mg
		  )
		{
			push @received, { payload => decode_json($1), pid => $2 };
		}
		return 1 if $done->();
		return 0 if time() > $deadline;
		usleep(50_000);
	}
}
sub for_request
{
	my ($id) = @_;
	return grep { $_->{payload}{request_id} == $id } @received;
}

# --- a lifecycle: each notification row is heard once -------------------------
my $r1 = as_role('nt_eng', q{SELECT lockbox_request('acme', 'customer sees stale totals')});
# a transition that rolls back notifies nobody
$node->safe_psql('nt',
	"BEGIN; SET SESSION AUTHORIZATION nt_rev; SELECT lockbox_deny($r1, 'rolled back anyway'); ROLLBACK;");
is(as_role('nt_rev', "SELECT lockbox_approve($r1)"), 'pending_approval', 'r1 reviewed');
is(as_role('nt_app1', "SELECT lockbox_approve($r1)"), 'approved', 'r1 approved');
is(as_role('nt_eng', "SELECT lockbox_close($r1, 'done')"), 'closed', 'r1 closed');

my $rows = $node->safe_psql(
	'nt', qq{
	SELECT id, recipient, event FROM lockbox.notifications
	 WHERE request_id = $r1 ORDER BY id});
my @rows = map { [ split /\|/ ] } split /\n/, $rows;
is(scalar(@rows), 7,
	'r1 has seven notification rows: the reviewers, two approvers, approved and closed for the requester, access started and ended for the approver who approved');

ok(receive_until(sub { for_request($r1) >= scalar(@rows) }),
	'the listener hears every notification of r1');

my @heard = sort { $a->{payload}{id} <=> $b->{payload}{id} } for_request($r1);
is_deeply(
	[ map { $_->{payload}{id} } @heard ],
	[ map { $_->[0] } @rows ],
	'one notification per row, none twice');
is_deeply(
	[ map { [ @{ $_->{payload} }{qw(recipient event)} ] } @heard ],
	[ map { [ $_->[1], $_->[2] ] } @rows ],
	'each payload names its row\'s recipient and event');
my @missing = grep {
	my $p = $_->{payload};
	grep { !defined $p->{$_} } qw(event request_id tenant state)
} @heard;
is(scalar(@missing), 0, 'every payload has event, request_id, tenant and state');
is_deeply(
	[ map { $_->{payload}{state} } @heard ],
	[ 'pending_review', 'pending_approval', 'pending_approval', 'approved', 'approved', 'closed', 'closed' ],
	'payload states follow the lifecycle');
is_deeply([ map { $_->{payload}{tenant} } @heard ],
	[ ('acme') x 7 ], 'payloads name the tenant');
is_deeply([ grep { $_ != $worker_pid } map { $_->{pid} } @heard ],
	[], 'every notification is sent by the lockbox worker');
ok(!grep({ $_->{payload}{event} eq 'denied' } @received),
	'the rolled-back deny sent nothing');

# --- relaying is cheap --------------------------------------------------------
# The worker reads each notification it relays by its key, and a wake-up to
# relay does not make it read every deadline.  (A relay planned while
# lockbox.notification was small scanned the whole table for every batch as
# it grew, and each transition's wake-up read lockbox.open_request three
# times: under a stream of transitions the worker took a fifth of the CPU.)
sub seq_scans
{
	my ($table) = @_;
	return $node->safe_psql('nt',
		"SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'lockbox.$table'::regclass");
}
my %scans_before = map { $_ => seq_scans($_) } qw(notification open_request);
my $heard_each = 1;
for my $i (1 .. 20)
{
	my $id = as_role('nt_eng', "SELECT lockbox_request('acme', 'relayed case $i')");
	$heard_each &&= receive_until(sub { for_request($id) >= 1 });
}
ok($heard_each, 'twenty requests filed one by one: each is heard before the next is filed');
is(seq_scans('notification') - $scans_before{notification}, 0,
	'the worker read their notifications by key, with no sequential scan of lockbox.notification');
cmp_ok(seq_scans('open_request') - $scans_before{open_request}, '<', 10,
	'and did not read lockbox.open_request at every wake-up');
# Filed by four clients at once, for 3 seconds: the same.
%scans_before = map { $_ => seq_scans($_) } qw(notification open_request);
$node->pgbench('--no-vacuum --client=4 --jobs=2 --time=3',
	0, [qr{processed: [1-9]}], [qr{^$}], 'four clients file requests for 3 seconds',
	{ '003_requests' => "SET ROLE nt_eng;\nSELECT lockbox_request('acme', 'concurrent case');\n" },
	'nt');
my %concurrent = map { $_ => 1 } split /\n/,
  $node->safe_psql('nt', q{SELECT id FROM lockbox.requests WHERE reason = 'concurrent case'});
ok(receive_until(sub { scalar(grep { $concurrent{ $_->{payload}{request_id} } } @received) >= keys %concurrent }),
	sprintf('each of the %d is heard', scalar(keys %concurrent)));
is(seq_scans('notification') - $scans_before{notification}, 0,
	'relayed by key');
cmp_ok(seq_scans('open_request') - $scans_before{open_request}, '<', 10,
	'and lockbox.open_request was read a few times at most, not at every wake-up');

# --- a relay that fails keeps what it took from the ring ----------------------
# (The worker took the ids from the ring before its relay transaction, and
# one that failed, with a full NOTIFY queue say, lost them: the outbox keeps
# its rows.)  Here the relay fails while lockbox.notification is renamed.
kill 'STOP', $worker_pid;
my $r_retry = as_role('nt_eng', q{SELECT lockbox_request('acme', 'relayed after a failed relay')});
$node->safe_psql('nt', 'ALTER TABLE lockbox.notification RENAME TO notification_away');
my $fail_from = -s $node->logfile;
kill 'CONT', $worker_pid;
ok($node->wait_for_log(qr/ERROR:  lockbox\.notification is missing/, $fail_from),
	'the worker\'s relay fails while lockbox.notification is away');
$node->safe_psql('nt', 'ALTER TABLE lockbox.notification_away RENAME TO notification');
ok(receive_until(sub { for_request($r_retry) >= 1 }),
	'once it is back, the notification the failed relay had taken from the ring is heard');
is(scalar(for_request($r_retry)), 1, 'once');

# --- a forged NOTIFY -----------------------------------------------------------
# Anyone may NOTIFY lockbox.  A consumer tells a real notification by its
# sender (the pid lockbox.worker shows for the database) and by its payload,
# which equals the row of lockbox.notifications its "id" names.
$node->safe_psql('nt', q{CREATE ROLE nt_forger LOGIN});
my $forged = '{"id": 1, "event": "approved", "request_id": 424242, "tenant": "acme", "state": "approved", "recipient": "nt_app1"}';
$node->safe_psql('nt', "NOTIFY lockbox, '$forged'", extra_params => [ '-U', 'nt_forger' ]);
ok(receive_until(sub { for_request(424242) >= 1 }), 'a forged NOTIFY lockbox is heard');
my ($fake) = for_request(424242);
my $real_pid = $node->safe_psql('nt', q{SELECT pid FROM lockbox.worker WHERE database = 'nt'});
isnt($fake->{pid}, $real_pid, 'its sender is not the pid lockbox.worker shows');
is( $node->safe_psql('nt', qq{
	SELECT count(*) FROM lockbox.notifications
	 WHERE id = $fake->{payload}{id} AND payload = '$forged'::jsonb}),
	'0', 'and no row of lockbox.notifications has its id and payload');
my ($genuine) = grep { $_->{payload}{event} eq 'closed' } for_request($r1);
is( $node->safe_psql('nt', qq{
	SELECT count(*) FROM lockbox.notifications
	 WHERE id = $genuine->{payload}{id}
	   AND payload = '@{[ encode_json($genuine->{payload}) ]}'::jsonb}),
	'1', 'a genuine one matches its row exactly');
is($genuine->{pid}, $real_pid, 'and was sent by the worker lockbox.worker shows');

# --- only after commit ------------------------------------------------------
my $r2 = as_role('nt_eng', q{SELECT lockbox_request('acme', 'second case, kept open')});
my $r3 = as_role('nt_eng', q{SELECT lockbox_request('acme', 'third case, committed')});
my $open = $node->background_psql('nt');
$open->query_safe('SET SESSION AUTHORIZATION nt_rev');
$open->query_safe('BEGIN');
is($open->query_safe("SELECT lockbox_approve($r2)"), 'pending_approval',
	'r2 reviewed in an open transaction');
is(as_role('nt_rev', "SELECT lockbox_approve($r3)"), 'pending_approval', 'r3 reviewed and committed');
# (the reviewers' notifications of r2 and r3 were committed with the requests)
sub approvals_for
{
	my ($id) = @_;
	return grep { $_->{payload}{event} eq 'approval_requested' } for_request($id);
}
ok(receive_until(sub { approvals_for($r3) >= 2 }),
	'the committed review of r3 is heard');
is(scalar(approvals_for($r2)), 0, 'the open review of r2 is not, while it is open');
$open->query_safe('COMMIT');
ok(receive_until(sub { approvals_for($r2) >= 2 }),
	'the review of r2 is heard once committed');
is(scalar(approvals_for($r2)), 2, 'once per approver');
$open->quit;

# --- a savepoint rolled back takes back only its own notifications ---------
my $r4 = as_role('nt_eng', q{SELECT lockbox_request('acme', 'fourth case, reviewed before a savepoint')});
my $r5 = as_role('nt_eng', q{SELECT lockbox_request('acme', 'fifth case, denied in a savepoint')});
$node->safe_psql('nt', qq{
	SET SESSION AUTHORIZATION nt_rev;
	BEGIN;
	SELECT lockbox_approve($r4);
	SAVEPOINT s;
	SELECT lockbox_deny($r5, 'taken back with the savepoint');
	ROLLBACK TO SAVEPOINT s;
	COMMIT;});
ok(receive_until(sub { approvals_for($r4) >= 2 }),
	'the review before the savepoint is heard');
is(scalar(approvals_for($r4)), 2, 'once per approver');
is(scalar(grep { $_->{payload}{event} eq 'denied' } for_request($r5)), 0,
	'the denial rolled back with the savepoint is not');

# --- a commit that fails after the ring places were reserved ------------------
# A transition reserves its places just before its commit; a commit that
# fails after that (a serialization failure is checked after every
# pre-commit callback) voids them: nothing is sent for it, and the worker
# does not stop at its places.
$node->safe_psql('nt', q{
CREATE TABLE skew (class int, value int);
INSERT INTO skew VALUES (1, 10), (2, 100);
GRANT ALL ON skew TO PUBLIC;});
my $t1 = $node->background_psql('nt', on_error_stop => 0);
$t1->query_safe('SET SESSION AUTHORIZATION nt_eng');
$t1->query_safe('BEGIN ISOLATION LEVEL SERIALIZABLE');
$t1->query_safe('SELECT sum(value) FROM skew WHERE class = 1');
$t1->query_safe('INSERT INTO skew VALUES (2, 30)');
my $lost = $t1->query_safe(q{SELECT lockbox_request('acme', 'lost to a serialization failure')});
$node->safe_psql('nt', q{
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT sum(value) FROM skew WHERE class = 2;
INSERT INTO skew VALUES (1, 300);
COMMIT;});
$t1->query('COMMIT');
like($t1->{stderr}, qr/could not serialize access/,
	'a transaction that filed a request fails to commit after its pre-commit');
$t1->quit;
is($node->safe_psql('nt', "SELECT count(*) FROM lockbox.requests WHERE id = $lost"), '0',
	'its request is gone');
my $after_void = as_role('nt_eng', q{SELECT lockbox_request('acme', 'filed after the failed commit')});
ok(receive_until(sub { for_request($after_void) >= 1 }),
	'a notification committed after it is heard: the worker does not stop at the voided place');
is(scalar(for_request($lost)), 0, 'none of the failed transaction\'s');

# --- a full relay ring: the outbox takes the rest, nothing lost or doubled ---
# The worker is stopped (SIGSTOP) while 1,100 requests are filed, each in
# its own transaction and each telling the reviewers: the ring holds 1,024.
kill 'STOP', $worker_pid;
$node->safe_psql('nt', "SET SESSION AUTHORIZATION nt_eng;\n" .
	join('', map { "SELECT lockbox_request('acme', 'bulk case number $_');\n" } 1 .. 1100));
my $spilled = $node->safe_psql('nt', q{SELECT count(*) FROM lockbox.notify_outbox});
kill 'CONT', $worker_pid;
cmp_ok($spilled, '>=', 1100 - 1024, 'with the worker stopped, the notifications the ring had no room for went into the outbox');
cmp_ok($spilled, '<', 1100, 'and the others into the ring');
my %bulk_ids = map { $_ => 1 } split /\n/, $node->safe_psql('nt', q{
	SELECT n.id FROM lockbox.notifications n JOIN lockbox.requests r ON r.id = n.request_id
	 WHERE r.reason LIKE 'bulk case number %'});
is(scalar(keys %bulk_ids), 1100, 'the 1,100 requests have a notification each');
ok(receive_until(sub { scalar(grep { $bulk_ids{ $_->{payload}{id} } } @received) >= 1100 }),
	'once the worker runs again, every one is heard');
my %count;
$count{ $_->{payload}{id} }++ for grep { $bulk_ids{ $_->{payload}{id} } } @received;
is(scalar(grep { $_ != 1 } values %count), 0, 'each once');
is($node->safe_psql('nt', q{SELECT count(*) FROM lockbox.notify_outbox}), '0',
	'and the outbox is empty again');

$listener->quit;

# --- DROP DATABASE of a served database -------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE dropme');
$node->safe_psql('dropme', 'CREATE EXTENSION lockbox');
ok( $node->poll_query_until(
		'postgres', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = 'dropme'},
		'1'),
	'a lockbox worker serves database dropme');
my $start = time();
my ($ret, $out, $err) =
  $node->psql('postgres', 'DROP DATABASE dropme', timeout => 60);
my $elapsed = time() - $start;
is($ret, 0, 'DROP DATABASE of a served database succeeds') or diag($err);
unlike($err, qr/WARNING/, 'without a warning (no engineer read there, so it has no spool)');
cmp_ok($elapsed, '<', 5, sprintf('and does not hang (%.1fs)', $elapsed));
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_database WHERE datname = 'dropme'}),
	'0', 'the database is gone');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datid IS NOT NULL
	   AND datid NOT IN (SELECT oid FROM pg_database)}),
	'0',
	'no worker is left for the dropped database');
is( $node->safe_psql(
		'postgres', q{
	SELECT pid FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = 'nt'}),
	$worker_pid,
	'the worker of the other database is untouched');

$node->stop;
done_testing();
