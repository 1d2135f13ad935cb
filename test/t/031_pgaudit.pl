# lockbox next to pgaudit (pgaudit.log = 'all'): pgaudit logs what users run,
# including their calls of lockbox's functions, and none of lockbox's own
# statements: not the worker's, not those lockbox's functions run for the
# caller, not the sql_drop event trigger's on every DROP.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('pgaudit');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'pgaudit, lockbox'
pgaudit.log = 'all'
pgaudit.log_catalog = on
pgaudit.log_relation = on
lockbox.anchor_interval = '1s'
lockbox.review_timeout = '1s'
});
$node->start;

my $db = 'pa';
LockboxTest::setup($node, $db);
$node->safe_psql('postgres', "CREATE DATABASE $db");
my $log_start = -s $node->logfile;
$node->safe_psql(
	$db, q{
CREATE EXTENSION pgaudit;
CREATE EXTENSION lockbox;
CREATE ROLE pa_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE pa_rev LOGIN IN ROLE lockbox_reviewer;
CREATE ROLE pa_app LOGIN IN ROLE lockbox_approver;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'pa_app');
CREATE TABLE t (tenant text, v int);
INSERT INTO t VALUES ('acme', 1), ('other', 2);
GRANT SELECT ON t TO lockbox_engineer;
SELECT lockbox_protect('t', tenant_column => 'tenant');
});

# after CREATE EXTENSION: what users do from here on
$log_start = -s $node->logfile;
my $r = as_role('pa_eng',
	q{SELECT lockbox_request('acme', 'Invoice totals are wrong for acme')});
as_role('pa_rev', "SELECT lockbox_approve($r)");
as_role('pa_app', "SELECT lockbox_approve($r)");
$node->safe_psql($db, 'SELECT count(*) FROM t', extra_params => [ '-U', 'pa_eng' ]);
# a request that the worker expires
as_role('pa_eng', q{SELECT lockbox_request('acme', 'Another look at acme invoices')});
$node->safe_psql($db, 'CREATE TABLE scratch (x int); DROP TABLE scratch');
# the worker audits the statement, expires the request, writes anchors
for (1 .. 100)
{
	last if $node->safe_psql($db,
		q{SELECT count(*) FROM lockbox.audit WHERE event IN ('access', 'expire')}) == 2;
	usleep(100_000);
}
sleep 2;
is( $node->safe_psql($db,
		q{SELECT count(*) FROM lockbox.audit WHERE event IN ('access', 'expire')}),
	'2', 'the worker audited the statement and expired the request');

my $log = substr(slurp_file($node->logfile), $log_start);
my @audit = grep { /AUDIT: / } split /\n/, $log;
ok(scalar(grep { /lockbox_request/ } @audit) >= 1,
	"pgaudit logs the user's call of lockbox_request");
ok(scalar(grep { /DROP TABLE scratch/ } @audit) >= 1, "pgaudit logs the user's DROP");
# (the test's own queries of lockbox.audit name the tables behind the view)
@audit = grep { !/FROM lockbox\.audit WHERE event IN/ } @audit;
my @internal = grep { /lockbox\.(audit_log|request|decision|notification|notify_outbox|protected_table|access_spool|session_end|revocation|tenant|approver)\b/ } @audit;
is(scalar(@internal), 0, "no AUDIT line names lockbox's internal tables")
  or diag(join("\n", @internal[ 0 .. ($#internal < 9 ? $#internal : 9) ]));
my $worker_pid = $node->safe_psql($db,
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'lockbox worker'});
like($worker_pid, qr/^\d+$/, 'the lockbox worker runs');
my @worker = grep { /\[$worker_pid\]/ } @audit;
is(scalar(@worker), 0, "no AUDIT line comes from the lockbox worker");

done_testing();
