# The audit's hash DAG survives a crash (README "The audit log").
#
# Audit rows are written, two of them by concurrent transactions so that the
# log has two tips, and a third transaction with an audit row is still open
# when the server crashes (immediate shutdown).  After the restart the log
# verifies; the next row links exactly the two old tips (not the lost row);
# the row after that links the one before; no transition is lost or
# repeated; and the log still verifies, also after a clean restart.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;

my $node = PostgreSQL::Test::Cluster->new('restart');
LockboxTest::setup($node, 'au');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE au');
$node->safe_psql(
	'au', q{
CREATE EXTENSION lockbox;
CREATE ROLE ar_eng IN ROLE lockbox_engineer;
CREATE ROLE ar_rev1 IN ROLE lockbox_reviewer;
CREATE ROLE ar_rev2 IN ROLE lockbox_reviewer;
CREATE ROLE ar_rev3 IN ROLE lockbox_reviewer;
CREATE ROLE ar_app IN ROLE lockbox_approver;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'ar_app');
CREATE TABLE acme_data (tenant text);
SELECT lockbox_protect('acme_data', tenant_column => 'tenant');
});

sub verify
{
	return $node->safe_psql('au',
		'SELECT ok, rows_checked, first_bad_seq FROM lockbox_verify_audit()');
}
sub audit_count
{
	return $node->safe_psql('au', 'SELECT count(*) FROM lockbox.audit_log');
}
# (lockbox.audit shows the parents a row stores as NULL, its only parent
# being the row before it)
sub newest_row
{
	return $node->safe_psql('au',
		'SELECT seq, parents FROM lockbox.audit ORDER BY seq DESC LIMIT 1');
}

my @r = map {
	as_role('ar_eng', "SELECT lockbox_request('acme', 'case number $_ for acme')")
} 1 .. 4;

# two reviews in concurrent transactions: two tips
my @open = map {
	my $s = $node->background_psql('au');
	$s->query_safe("SET SESSION AUTHORIZATION ar_rev$_");
	$s->query_safe('BEGIN');
	$s;
} 1 .. 3;
is($open[0]->query_safe("SELECT lockbox_approve($r[0])"), 'pending_approval', 'review 1 (open)');
is($open[1]->query_safe("SELECT lockbox_approve($r[1])"), 'pending_approval', 'review 2 (open)');
$open[0]->query_safe('COMMIT');
$open[1]->query_safe('COMMIT');
my $tips = $node->safe_psql(
	'au', qq{
	SELECT array_agg(seq ORDER BY seq) FROM lockbox.audit_log
	 WHERE request_id IN ($r[0], $r[1]) AND event = 'approve'});
like($tips, qr/^\{\d+,\d+\}$/, "both concurrent reviews committed: $tips");

# a third review is in flight when the server crashes
is($open[2]->query_safe("SELECT lockbox_approve($r[2])"), 'pending_approval',
	'review 3 written, not committed');
my $rows_before = audit_count();
my ($ok, $checked) = split /\|/, verify();
is($ok, 't', 'the audit verifies before the crash');

$node->stop('immediate');
$_->quit for @open;    # their server is gone
$node->start;

($ok, $checked) = split /\|/, verify();
is($ok, 't', 'the audit verifies after the crash');
is($checked, $rows_before, 'with every committed row, and none of the lost transaction');
is(as_role('ar_eng', "SELECT state FROM lockbox.requests WHERE id = $r[2]"),
	'pending_review', 'the uncommitted review was lost with the crash');

# the next row links the two old tips
is(as_role('ar_rev3', "SELECT lockbox_approve($r[2])"), 'pending_approval',
	'review 3 again, after the restart');
my ($seq1, $parents1) = split /\|/, newest_row();
is($parents1, $tips, 'the first row after the crash links both old tips');

# and the row after it links that one
is(as_role('ar_rev1', "SELECT lockbox_approve($r[3])"), 'pending_approval', 'review 4');
my ($seq2, $parents2) = split /\|/, newest_row();
is($parents2, "{$seq1}", 'the next row links the previous one');

is( $node->safe_psql(
		'au', qq{
	SELECT string_agg(request_id || ':' || event, ' ' ORDER BY seq)
	  FROM lockbox.audit_log WHERE request_id IN ($r[0], $r[1], $r[2], $r[3])}),
	"$r[0]:request $r[1]:request $r[2]:request $r[3]:request "
	  . "$r[0]:approve $r[1]:approve $r[2]:approve $r[3]:approve",
	'one audit row per transition: none lost, none repeated');

($ok, $checked) = split /\|/, verify();
is($ok, 't', 'the audit verifies after new transitions');
is($checked, $rows_before + 2, 'with the two new rows');

# a second crash right after writes, then a clean restart
my $tip = $seq2;
$node->stop('immediate');
$node->start;
is(as_role('ar_app', "SELECT lockbox_approve($r[0])"), 'approved', 'an approval after a second crash');
my ($seq3, $parents3) = split /\|/, newest_row();
is($parents3, "{$tip}", 'links the tip from before the second crash');
$node->restart;
is(as_role('ar_eng', "SELECT lockbox_close($r[0])"), 'closed', 'a close after a clean restart');
my ($seq4, $parents4) = split /\|/, newest_row();
is($parents4, "{$seq3}", 'links the tip from before the clean restart');
($ok, $checked) = split /\|/, verify();
is($ok, 't', 'the audit verifies at the end');
is($checked, $rows_before + 4, 'with every row');

# tampering is still caught after all this (the check can fail): a superuser
# who edits the catalogs to switch the append-only trigger off
$node->safe_psql('au',
	"UPDATE pg_trigger SET tgenabled = 'D' WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc;
	 UPDATE pg_class SET relname = relname WHERE oid IN
		(SELECT tgrelid FROM pg_trigger WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc);
	 UPDATE lockbox.audit_log SET actor = 'mallory' WHERE seq = $seq1;
	 UPDATE pg_trigger SET tgenabled = 'A' WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc;
	 UPDATE pg_class SET relname = relname WHERE oid IN
		(SELECT tgrelid FROM pg_trigger WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc);");
my ($ok2, undef, $bad) = split /\|/, verify();
is("$ok2|$bad", "f|$seq1", 'an edited row is reported by lockbox_verify_audit');

$node->stop;
done_testing();
