# The worker keeps lockbox's deadlines (README "The worker" and "Settings").
#
# - A pending stage expires at its deadline: stage 1 after
#   lockbox.review_timeout, stage 2 after lockbox.approval_timeout.  The
#   worker records it in lockbox.request (state expired; the views would show
#   "expired" lazily anyway, so the internal table is what is checked), writes
#   one audit row 'expire' with detail.by = 'lockbox worker' and one
#   notification 'expired' to the requester, within a second of the deadline.
# - An access window ends at access_ends_at: state closed, close_reason
#   window_elapsed, one audit row 'close' by the worker within a second, no
#   grant to the engineer left in pg_class.relacl, and the engineer's open
#   session (a LOGIN role, connected as itself) ended within a couple of
#   seconds.  With lockbox.terminate_sessions = off the session survives,
#   without access.
# - lockbox_revoke ends the engineer's sessions; lockbox_close ends the
#   engineer's other sessions, not the one that closed the request.
# - A session holding a due request's row lock (a transition in an open
#   transaction) neither makes the worker spin nor delays the request once
#   released: it is expired within a second of the rollback.
# - A revocation is not held back by a requester holding the request.
# - An engineer's statement on a protected table is in lockbox.access_log.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('worker_expiry');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
lockbox.review_timeout = '2s'
lockbox.approval_timeout = '2s'
});
$node->start;

my $db = 'wx';
LockboxTest::setup($node, $db);
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE wx_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE wx_rev IN ROLE lockbox_reviewer;
CREATE ROLE wx_app IN ROLE lockbox_approver;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'wx_app');
CREATE TABLE acme_data (tenant text, v int);
INSERT INTO acme_data VALUES ('acme', 1), ('acme', 2), ('globex', 3);
SELECT lockbox_protect('acme_data', tenant_column => 'tenant');
});
ok( $node->poll_query_until(
		$db, q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = current_database()},
		'1'),
	'a lockbox worker serves the database');

sub new_request
{
	my ($reason, $duration) = @_;
	my $d = defined $duration ? ", duration => '$duration'" : '';
	return as_role('wx_eng', "SELECT lockbox_request('acme', '$reason'$d)");
}

# a request through both stages, approved
sub approved_request
{
	my ($reason, $duration) = @_;
	my $id = new_request($reason, $duration);
	as_role('wx_rev', "SELECT lockbox_approve($id)");
	my $state = as_role('wx_app', "SELECT lockbox_approve($id)");
	die "request $id is $state, not approved" unless $state eq 'approved';
	return $id;
}

# A SIGHUP setting: ALTER SYSTEM, reload, and wait until a new session sees it
# (the postmaster has reloaded, and so have the worker and later backends).
sub set_conf
{
	my ($name, $value) = @_;
	sql("ALTER SYSTEM SET $name = '$value'");
	sql('SELECT pg_reload_conf()');
	$node->poll_query_until($db, "SELECT current_setting('$name')", $value)
	  or die "$name did not become $value";
}

# the engineer, logged in as itself, in a session that stays open
sub engineer_session
{
	my $s = $node->background_psql($db,
		extra_params => [ '-U', 'wx_eng' ],
		on_error_stop => 0);
	my ($pid) = session_query($s, 'SELECT pg_backend_pid()');
	return ($s, $pid);
}

# Run a query in a background session: (output, stderr) of this query, or
# (undef, reason) when the session is gone.  BackgroundPsql keeps stderr
# across queries, so it is cleared first.
sub session_query
{
	my ($s, $q) = @_;
	$s->{stderr} = '';
	my $out = eval { $s->query($q) };
	return (undef, "session lost: $@") unless defined $out;
	return ($out, $s->{stderr});
}

# Has the session been ended by the server?  Its next query finds the
# connection gone (psql exits, or reports the termination).
sub session_ended
{
	my ($s) = @_;
	my ($out, $err) = session_query($s, 'SELECT 1');
	return 1 if !defined $out;
	return $err =~ /terminating connection|server closed the connection|connection to server was lost/;
}

sub session_quit
{
	my ($s) = @_;
	eval { $s->quit };
}

sub backend_alive
{
	my ($pid) = @_;
	return sql("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid");
}

# Has the engineer a grant of its own on acme_data (pg_class.relacl)?  Access
# may come with grants to the engineer or through lockbox_engineer; either
# way none to the engineer may outlive the access.
sub engineer_acl
{
	return sql(
		q{SELECT coalesce(array_to_string(relacl, ','), '') ~ '(^|,)wx_eng='
		    FROM pg_class WHERE oid = 'acme_data'::regclass});
}

# the worker has finished the pass that wrote the request's audit row for
# event, or a later one (a pass ends sessions after acting on deadlines)
sub pass_done_after
{
	my ($id, $event) = @_;
	return $node->poll_query_until(
		$db, qq{
	SELECT w.last_pass > a.at
	  FROM lockbox.worker w, lockbox.audit_log a
	 WHERE w.database = current_database()
	   AND a.request_id = $id AND a.event = '$event'});
}

# ---------------------------------------------------------------------------
# Expiry of stage 1 and of stage 2, side by side
# ---------------------------------------------------------------------------
my $r1 = new_request('stage one will not be reviewed');
my $r2 = new_request('stage two will not be approved');
is(as_role('wx_rev', "SELECT lockbox_approve($r2)"),
	'pending_approval', 'r2 reviewed: stage 2');

my %deadline;
for my $r ($r1, $r2)
{
	$deadline{$r} = sql("SELECT deadline FROM lockbox.request WHERE id = $r");
}
is( sql(qq{
	SELECT (SELECT deadline - created_at FROM lockbox.request WHERE id = $r1)
	    || ' ' || (SELECT deadline - reviewed_at FROM lockbox.request WHERE id = $r2)}),
	'00:00:02 00:00:02',
	'stage deadlines follow review_timeout and approval_timeout (2s each)');

for my $case ([ $r1, 'stage 1', 'pending_review' ],
	[ $r2, 'stage 2', 'pending_approval' ])
{
	my ($r, $stage, $from) = @$case;
	ok( $node->poll_query_until(
			$db, "SELECT state FROM lockbox.request WHERE id = $r", 'expired'),
		"$stage: the worker records the expiry in lockbox.request");
	is( sql(qq{
		SELECT count(*) || ' ' || string_agg(
		         concat_ws(' ', detail->>'by', detail->>'from', detail->>'to'), ',')
		  FROM lockbox.audit_log WHERE request_id = $r AND event = 'expire'}),
		"1 lockbox worker $from expired",
		"$stage: one audit row 'expire' by the lockbox worker, $from -> expired");
	my ($late) = sql(qq{
		SELECT extract(epoch FROM at - '$deadline{$r}'::timestamptz)
		  FROM lockbox.audit_log WHERE request_id = $r AND event = 'expire'});
	ok($late >= 0 && $late < 1,
		"$stage: expired within a second of the deadline, not before (${late}s)");
	is( sql(qq{
		SELECT closed_at = '$deadline{$r}'::timestamptz AND deadline IS NULL
		  FROM lockbox.request WHERE id = $r}),
		't', "$stage: closed_at is the deadline; no deadline remains");
	is( sql(qq{
		SELECT string_agg(event, ',') FROM lockbox.notification
		 WHERE request_id = $r AND recipient = 'wx_eng'::regrole}),
		'expired', "$stage: the requester is notified once: expired");
}
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies');

# from here on, pending stages do not expire during the test
set_conf('lockbox.review_timeout', '1h');
set_conf('lockbox.approval_timeout', '1h');

# ---------------------------------------------------------------------------
# The access window ends: closed, grants gone, the engineer's session ended
# ---------------------------------------------------------------------------
my ($eng, $eng_pid) = engineer_session();
my ($out, $err) = session_query($eng, 'SELECT count(*) FROM acme_data');
like($err, qr/ERROR:.*lockbox/, 'before approval the engineer is refused');

my $r3 = approved_request('window of two seconds', '2 seconds');
($out, $err) = session_query($eng, 'SELECT count(*) FROM acme_data');
is($out, '2', 'in the window the engineer reads the tenant\'s two rows')
  or diag($err);

ok( $node->poll_query_until(
		$db, "SELECT state FROM lockbox.request WHERE id = $r3", 'closed'),
	'window end: the worker records the request closed');
is( sql(qq{
	SELECT close_reason || ' ' || (closed_at = access_ends_at)
	  FROM lockbox.request WHERE id = $r3}),
	'window_elapsed true',
	'close_reason window_elapsed; closed_at is access_ends_at');
is( sql(qq{
	SELECT count(*) || ' ' || string_agg(concat_ws(' ', detail->>'by',
	         detail->>'from', detail->>'to', detail->>'close_reason'), ',')
	  FROM lockbox.audit_log WHERE request_id = $r3 AND event = 'close'}),
	'1 lockbox worker approved closed window_elapsed',
	'one audit row \'close\' by the lockbox worker, window_elapsed');
my ($late) = sql(qq{
	SELECT extract(epoch FROM a.at - r.access_ends_at)
	  FROM lockbox.audit_log a JOIN lockbox.request r ON r.id = a.request_id
	 WHERE a.request_id = $r3 AND a.event = 'close'});
ok($late >= 0 && $late < 1,
	"the window is closed within a second of its end, not before (${late}s)");
is( sql(qq{
	SELECT string_agg(event, ',' ORDER BY id) FROM lockbox.notification
	 WHERE request_id = $r3 AND recipient = 'wx_eng'::regrole}),
	'approved,closed', 'the requester is notified: closed');
is(engineer_acl(), 'f', 'no grant to the engineer is left in relacl');

ok($node->poll_query_until($db, "SELECT count(*) FROM pg_stat_activity WHERE pid = $eng_pid", '0'),
	'the engineer\'s open session is ended');
my $gone_after = time() - sql(qq{
	SELECT extract(epoch FROM access_ends_at) FROM lockbox.request WHERE id = $r3});
cmp_ok($gone_after, '<', 3,
	sprintf('within a couple of seconds of the window\'s end (%.1fs)', $gone_after));
ok(session_ended($eng), 'the engineer\'s session cannot run another query');
session_quit($eng);

# ---------------------------------------------------------------------------
# lockbox.terminate_sessions = off: the session survives, without access
# ---------------------------------------------------------------------------
set_conf('lockbox.terminate_sessions', 'off');
($eng, $eng_pid) = engineer_session();
my $r4 = approved_request('window, sessions kept', '2 seconds');
ok( $node->poll_query_until(
		$db, "SELECT state FROM lockbox.request WHERE id = $r4", 'closed'),
	'terminate_sessions off: the window still ends');
ok(pass_done_after($r4, 'close'), 'the worker has finished that pass');
is(backend_alive($eng_pid), '1', 'the engineer\'s session is not ended');
($out, $err) = session_query($eng, 'SELECT 1');
is($out, '1', 'and still runs queries');
($out, $err) = session_query($eng, 'SELECT count(*) FROM acme_data');
like($err, qr/ERROR:.*lockbox/, 'but no longer reads acme_data');
is(engineer_acl(), 'f', 'and holds no grant');
session_quit($eng);
set_conf('lockbox.terminate_sessions', 'on');

# ---------------------------------------------------------------------------
# lockbox_revoke ends the engineer's sessions
# ---------------------------------------------------------------------------
($eng, $eng_pid) = engineer_session();
my $r5 = approved_request('access the customer revokes', '1 hour');
($out, $err) = session_query($eng, 'SELECT count(*) FROM acme_data');
is($out, '2', 'approved for an hour: the engineer reads') or diag($err);
my $t0 = time();
is(as_role('wx_app', "SELECT lockbox_revoke($r5, 'customer revoked the access')"),
	'revoked', 'the approver revokes');
is(engineer_acl(), 'f', 'no grant to the engineer is left');
ok($node->poll_query_until($db, "SELECT count(*) FROM pg_stat_activity WHERE pid = $eng_pid", '0'),
	'lockbox_revoke ends the engineer\'s session');
cmp_ok(time() - $t0, '<', 2, 'within a couple of seconds');
ok(session_ended($eng),
	'the revoked engineer\'s session cannot run another query');
session_quit($eng);

# ---------------------------------------------------------------------------
# lockbox_close ends the engineer's other sessions, not the closing one
# ---------------------------------------------------------------------------
my ($closer, $closer_pid) = engineer_session();
my ($other,  $other_pid)  = engineer_session();
my $r6 = approved_request('access the engineer closes', '1 hour');
($out, $err) = session_query($closer, "SELECT lockbox_close($r6, 'found it')");
is($out, 'closed', 'the engineer closes the request from one session')
  or diag($err);
ok($node->poll_query_until($db, "SELECT count(*) FROM pg_stat_activity WHERE pid = $other_pid", '0'),
	'lockbox_close ends the engineer\'s other session');
ok(pass_done_after($r6, 'close'), 'the worker has finished that pass');
is(backend_alive($closer_pid), '1', 'the closing session is not ended');
($out, $err) = session_query($closer, 'SELECT 1');
is($out, '1', 'and still runs queries');
ok(session_ended($other),
	'the other session cannot run another query');
session_quit($closer);
session_quit($other);
is( sql(qq{
	SELECT string_agg(request_id || ':' || event, ' ' ORDER BY seq)
	  FROM lockbox.audit_log WHERE request_id IN ($r5, $r6) AND event IN ('close', 'revoke')}),
	"$r5:revoke $r6:close",
	'one audit row each for the revoke and the close');

# ---------------------------------------------------------------------------
# A due request a session holds locked: no spinning, acted on once released
# ---------------------------------------------------------------------------
set_conf('lockbox.review_timeout', '2s');
my $r7 = new_request('reviewed in a transaction that rolls back');
my $holder = $node->background_psql($db, on_error_stop => 0);
session_query($holder, 'SET SESSION AUTHORIZATION wx_rev');
session_query($holder, 'BEGIN');
($out, $err) = session_query($holder, "SELECT lockbox_approve($r7)");
is($out, 'pending_approval', 'a reviewer approves r7 before its deadline, in an open transaction')
  or diag($err);
my $xacts = q{SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()};
ok( $node->poll_query_until(
		$db, "SELECT clock_timestamp() > deadline FROM lockbox.request WHERE id = $r7"),
	'r7\'s deadline passes, its row locked');
my $x0 = sql($xacts);
# two seconds later, roll back
ok( $node->poll_query_until(
		$db, qq{
	SELECT clock_timestamp() > deadline + interval '2 seconds'
	  FROM lockbox.request WHERE id = $r7}),
	'two seconds later the row is still locked');
my $spun = sql($xacts) - $x0;
is(sql("SELECT state FROM lockbox.request WHERE id = $r7"),
	'pending_review', 'the worker has not expired the locked request');
# a worker that retried every 100 ms would commit about 100 transactions in
# two seconds; one that spins commits tens of thousands
cmp_ok($spun, '<', 200,
	"the worker does not spin while the row is locked ($spun transactions committed in the database in those two seconds)");
session_query($holder, 'ROLLBACK');
my ($released) = session_query($holder, 'SELECT clock_timestamp()');
session_quit($holder);
ok( $node->poll_query_until(
		$db, "SELECT state FROM lockbox.request WHERE id = $r7", 'expired'),
	'after the rollback the worker expires r7');
($late) = sql(qq{
	SELECT extract(epoch FROM at - '$released'::timestamptz)
	  FROM lockbox.audit_log WHERE request_id = $r7 AND event = 'expire'});
ok(defined $late && $late < 1,
	"within a second of the lock's release (${\ ($late // 'never')}s)");
is(sql("SELECT count(*) FROM lockbox.audit_log WHERE request_id = $r7 AND event = 'expire'"),
	'1', 'once');

# ---------------------------------------------------------------------------
# A revocation is not held back by the requester holding the request (closing
# it in a transaction left open): it ends the access at once, and the worker
# moves the request to revoked once the row is free.
# ---------------------------------------------------------------------------
set_conf('lockbox.terminate_sessions', 'off');
my $r8 = approved_request('held by its requester while it is revoked');
my $holder8 = $node->background_psql($db, on_error_stop => 0);
session_query($holder8, 'SET SESSION AUTHORIZATION wx_eng');
session_query($holder8, 'BEGIN');
($out, $err) = session_query($holder8, "SELECT lockbox_close($r8)");
is($out, 'closed', 'the requester closes r8 in a transaction it leaves open')
  or diag($err);
my $t_revoke = time;
is(as_role('wx_app', "SELECT lockbox_revoke($r8, 'the customer withdrew consent')"),
	'revoked', 'an approver revokes r8 all the same');
my $took = time - $t_revoke;
cmp_ok($took, '<', 5, "without waiting for the requester ($took s)");
is(sql("SELECT count(*) FROM lockbox.active_access WHERE request_id = $r8"),
	'0', 'r8 gives no access any more');
is(sql("SELECT state FROM lockbox.requests WHERE id = $r8"),
	'revoked', 'lockbox.requests shows r8 revoked');
my ($rc, $stdout, $stderr) = $node->psql($db,
	'SET SESSION AUTHORIZATION wx_eng; SELECT count(*) FROM acme_data');
like($stderr, qr/no approved lockbox access to table/,
	'the engineer is refused the table in another session');
session_query($holder8, 'ROLLBACK');
session_quit($holder8);
ok( $node->poll_query_until(
		$db, "SELECT state FROM lockbox.request WHERE id = $r8", 'revoked'),
	'once the requester rolls back, the worker moves r8 to revoked');
is(sql("SELECT count(*) FROM lockbox.revocation"), '0',
	'and forgets the pending revocation');
is(sql(qq{SELECT string_agg(event, ',' ORDER BY seq) FROM lockbox.audit_log
	WHERE request_id = $r8 AND event IN ('revoke', 'close')}),
	'revoke', 'one audit row, the revocation');
set_conf('lockbox.terminate_sessions', 'on');

# ---------------------------------------------------------------------------
# Every statement of an engineer on a protected table is in the audit
# (lockbox.access_log), written by the worker from a queue in shared memory.
# ---------------------------------------------------------------------------
my $r9 = approved_request('reads the rows to check the access log');
is(as_role('wx_eng', 'SELECT count(*) FROM acme_data /* for the access log */'),
	'2', 'the engineer reads the tenant\'s rows');
ok( $node->poll_query_until(
		$db, qq{
	SELECT count(*) FROM lockbox.access_log
	 WHERE request_id = $r9 AND engineer = 'wx_eng' AND tenant = 'acme'
	   AND relation = 'public.acme_data' AND command = 'SELECT'
	   AND query LIKE '%for the access log%'}, '1'),
	'the statement is in lockbox.access_log, with its request, table and text');
is(sql("SELECT count(*) FROM lockbox.audit_log WHERE request_id = $r9 AND event = 'access'"),
	'1', 'as one audit row, in the hash-linked log');
# the same statement repeated by one session: counted, not lost
as_role('wx_eng', join('; ', ('SELECT count(*) FROM acme_data /* repeated */') x 5));
ok( $node->poll_query_until(
		$db, qq{
	SELECT sum(statements) FROM lockbox.access_log
	 WHERE request_id = $r9 AND query LIKE '%repeated%'}, '5'),
	'a statement repeated five times counts five (in as few rows as the worker saw)');

is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies');

# Autovacuum analyzes the audit's partitions, never lockbox.audit_log itself,
# whose statistics the access log's plans need: the worker analyzes it.
ok( $node->poll_query_until(
		$db, q{
	SELECT count(*) > 0 FROM pg_statistic
	 WHERE starelid = 'lockbox.audit_log'::regclass AND stainherit}),
	'the worker gathered statistics of the whole audit log');

$node->stop;
done_testing();
