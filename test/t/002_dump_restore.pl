# pg_dump and restore keep lockbox's state (the audit log, hash-chained;
# requests, decisions, notifications).
#
# A table of customer rows is protected, and a lifecycle with audit rows and
# notifications runs in database "src".  Its
# pg_dump is restored into a fresh database "dst" on the same node (CREATE
# DATABASE, then psql -f the dump).  In "dst" the requests, stage 2 votes,
# notifications, tenants and audit rows are there, identical;
# lockbox_verify_audit() is ok; the table is still protected; and a new
# transition works, gets fresh ids, links the restored audit, verifies, and
# opens access to exactly its tenant's rows.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;

my $node = PostgreSQL::Test::Cluster->new('dump');
LockboxTest::setup($node, 'src');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql(
	'src', q{
CREATE EXTENSION lockbox;
CREATE ROLE dr_eng IN ROLE lockbox_engineer;
CREATE ROLE dr_rev IN ROLE lockbox_reviewer;
CREATE ROLE dr_app1 IN ROLE lockbox_approver;
CREATE ROLE dr_app2 IN ROLE lockbox_approver;
CREATE ROLE dr_aud IN ROLE lockbox_auditor;
SELECT lockbox_add_tenant('acme', required_approvals => 2);
SELECT lockbox_add_approver('acme', 'dr_app1');
SELECT lockbox_add_approver('acme', 'dr_app2');
SELECT lockbox_add_tenant('globex');
SELECT lockbox_add_approver('globex', 'dr_app1');
CREATE TABLE invoices (tenant text NOT NULL, amount int);
INSERT INTO invoices VALUES ('acme', 10), ('acme', 11), ('globex', 20);
GRANT SELECT ON invoices TO lockbox_engineer;
SELECT lockbox_protect('invoices', tenant_column => 'tenant');
});

# r1: approved by two approvers, then closed by the engineer
my $r1 = as_role('dr_eng',
	q{SELECT lockbox_request('acme', 'invoice export broken for acme', ticket => 'SUP-1')});
is(as_role('dr_rev', "SELECT lockbox_approve($r1, 'go ahead')"),
	'pending_approval', 'r1 reviewed');
is(as_role('dr_app1', "SELECT lockbox_approve($r1)"),
	'pending_approval', 'r1 has one of two approvals');
is(as_role('dr_app2', "SELECT lockbox_approve($r1)"),
	'approved', 'r1 approved by the second approver');
is(as_role('dr_eng', "SELECT lockbox_close($r1, 'fixed the export')"),
	'closed', 'r1 closed by its engineer');
# r2: denied by the reviewer
my $r2 = as_role('dr_eng',
	q{SELECT lockbox_request('globex', 'customer wants a data dump')});
is(as_role('dr_rev', "SELECT lockbox_deny($r2, 'not a support case')"),
	'denied', 'r2 denied');
# r3: waiting for the customer when the dump is taken
my $r3 = as_role('dr_eng',
	q{SELECT lockbox_request('globex', 'slow queries on the globex dashboard', duration => '1 hour')});
is(as_role('dr_rev', "SELECT lockbox_approve($r3)"),
	'pending_approval', 'r3 awaits the customer');
# one notification delivered
as_role('dr_aud',
	q{SELECT lockbox_ack_notification(id) FROM lockbox_claim_notifications(1)});

# the worker has relayed every notification before the dump
ok($node->poll_query_until('src', 'SELECT count(*) FROM lockbox.notify_outbox', '0'),
	'the notifications are relayed');

# What must survive, read as the superuser (who sees every row).
my %queries = (
	requests => q{SELECT id, tenant, requester, reason, ticket, tables, access, duration,
						 state, created_at, deadline, approved_at, access_ends_at,
						 closed_at, close_reason
					FROM lockbox.requests ORDER BY id},
	decisions => q{SELECT request_id, approver::text, session_approver::text, decision,
						  comment, decided_at
					 FROM lockbox.decision ORDER BY request_id, approver::text},
	notifications => q{SELECT id, request_id, recipient, event, payload, created_at,
							  delivered_at
						 FROM lockbox.notifications ORDER BY id},
	audit => q{SELECT seq, at, session_user_name, actor, event, request_id, tenant,
					  detail, encode(hash, 'hex')
				 FROM lockbox.audit ORDER BY seq},
	tenants => q{SELECT tenant, enabled, required_approvals, approvers
				   FROM lockbox.tenants ORDER BY tenant},
	protected_tables => q{SELECT relation, tenant_column, tenant
					 FROM lockbox.protected_tables ORDER BY relation::text},
	posture => q{SELECT check_name, object, ok FROM lockbox.posture
				  ORDER BY check_name, object});
my %before = map { $_ => $node->safe_psql('src', $queries{$_}) } keys %queries;

# the source has something of each kind
my %counts = (
	requests => 3,
	decisions => 2,
	# r1: the reviewers, its 2 approvers, approved, access started for
	# both approvers, closed, access ended for both; r2: the reviewers,
	# denied; r3: the reviewers, its 1 approver
	notifications => 1 + 2 + 1 + 2 + 1 + 2 + 2 + 2,
	tenants => 2,
	protected_tables => 1);
for my $what (sort keys %counts)
{
	my @rows = split /\n/, $before{$what};
	is(scalar(@rows), $counts{$what}, "src has $counts{$what} $what");
}
my $audit_rows = () = $before{audit} =~ /\n/g;
$audit_rows++;
# 2 tenants, 3 approvers, 1 protected table; r1: request, review, 2 votes,
# close; r2: request, deny; r3: request, review
is($audit_rows, 6 + 5 + 2 + 2, 'src has an audit row per step');
like($before{notifications}, qr/\|\d{4}-\d\d-\d\d [^|]+$/m,
	'one notification is marked delivered');
is($node->safe_psql('src', 'SELECT ok FROM lockbox_verify_audit()'),
	't', 'the audit of src verifies');

# --- dump, restore into a fresh database ------------------------------------
my $dump = $node->basedir . '/src.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', $dump ],
	'pg_dump src');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst'), '-f', $dump ],
	'restore the dump into dst with psql -f');

for my $what (sort keys %queries)
{
	is($node->safe_psql('dst', $queries{$what}),
		$before{$what}, "dst has the same $what as src");
}

# lockbox.open_request is derived (not dumped): the restore's COPY into
# lockbox.request filled it again, with the open request r3 and its deadline
my $open_requests = q{SELECT o.id, o.due = r.deadline FROM lockbox.open_request o
	JOIN lockbox.request r USING (id) ORDER BY o.id};
is($node->safe_psql('src', $open_requests), "$r3|t", 'src: r3 is the open request');
is($node->safe_psql('dst', $open_requests), "$r3|t", 'dst: the restore filled lockbox.open_request again');

my ($ok, $checked, $bad) = split /\|/,
  $node->safe_psql('dst', 'SELECT ok, rows_checked, first_bad_seq FROM lockbox_verify_audit()');
is($ok, 't', 'the restored audit verifies');
is($checked, $audit_rows, 'every restored audit row is checked');

# the restored database is served like any other
ok( $node->poll_query_until(
		'dst', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = 'dst'},
		'1'),
	'a lockbox worker serves the restored database');

# --- life goes on in dst ----------------------------------------------------
my ($ret, $out, $err) = $node->psql('dst',
	'SET SESSION AUTHORIZATION dr_eng; SELECT * FROM invoices');
like($err, qr/ERROR:  .*lockbox.*invoices/,
	'in dst the protected table still refuses an engineer without access');
ok( $node->poll_query_until(
		'dst', "SELECT count(*) FROM lockbox.audit_log WHERE event = 'refused'", '1'),
	'the refused attempt is in the audit');
my $old_tip = $node->safe_psql('dst', 'SELECT max(seq) FROM lockbox.audit_log');
is(as_role('dr_app1', "SELECT lockbox_approve($r3, 'restored and approved')", 'dst'),
	'approved', 'a restored pending request can be approved in dst');
is( $node->safe_psql(
		'dst',
		"SELECT parents = ARRAY[$old_tip]::bigint[] AND seq > $old_tip FROM lockbox.audit
		  WHERE seq = (SELECT max(seq) FROM lockbox.audit_log)"),
	't',
	'the new audit row follows and links the restored audit');

is(as_role('dr_eng', 'SELECT tenant, amount FROM invoices ORDER BY amount', 'dst'),
	'globex|20', 'the approval opens exactly its tenant\'s rows to the engineer');

my $r4 = as_role('dr_eng',
	q{SELECT lockbox_request('acme', 'follow-up after the restore')}, 'dst');
cmp_ok($r4, '>', $r3, 'a new request gets an id after the restored ones');
is(as_role('dr_rev', "SELECT lockbox_approve($r4)", 'dst'),
	'pending_approval', 'and goes through review');
is( $node->safe_psql(
		'dst', qq{
	SELECT count(*) FROM lockbox.notifications
	 WHERE request_id = $r4 AND id > (SELECT max(id) FROM lockbox.notifications
									   WHERE request_id <> $r4)}),
	'3',
	'its notifications (the reviewers\', its two approvers\') get ids after the restored ones');

# the engineer's read of invoices is audited too, by the worker (an 'access' row)
ok( $node->poll_query_until(
		'dst',
		"SELECT count(*) FROM lockbox.audit_log WHERE event = 'access' AND seq > $old_tip",
		'1'),
	'the engineer\'s read in dst is in the audit');
($ok, $checked, $bad) = split /\|/,
  $node->safe_psql('dst', 'SELECT ok, rows_checked, first_bad_seq FROM lockbox_verify_audit()');
is($ok, 't', 'the audit of dst verifies after new transitions');
is($checked, $audit_rows + 5, 'with the five new rows (a refused attempt, three transitions, one read)');

# the source is untouched
is($node->safe_psql('src', $queries{requests}), $before{requests},
	'src still has its own requests');

$node->stop;
done_testing();
