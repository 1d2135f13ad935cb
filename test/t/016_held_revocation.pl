# A revocation recorded while a session holds its request locked ends the
# engineer's sessions once (README, "The worker", step 4).
#
# While the request row stays locked, the worker finds the revocation again
# at every retry (every 100 ms).  The sessions the engineer had when the
# access ended are ended; a session the engineer opens afterwards (which
# that access cannot serve: every statement on a protected table is
# refused by the clock) is left alone, retry after retry.  Once the row is
# free, the request moves to revoked.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('held_revocation');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->start;

my $db = 'hr';
LockboxTest::setup($node, $db);
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE hr_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE hr_rev IN ROLE lockbox_reviewer;
CREATE ROLE hr_app IN ROLE lockbox_approver;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'hr_app');
CREATE TABLE acme_data (tenant text, v int);
INSERT INTO acme_data VALUES ('acme', 1), ('globex', 2);
SELECT lockbox_protect('acme_data', tenant_column => 'tenant');
});
ok( $node->poll_query_until(
		$db, q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = current_database()},
		'1'),
	'a lockbox worker serves the database');

# (output, stderr) of a query in a background session, or (undef, reason)
# when the session is gone
sub session_query
{
	my ($s, $q) = @_;
	$s->{stderr} = '';
	my $out = eval { $s->query($q) };
	return (undef, "session lost: $@") unless defined $out;
	return ($out, $s->{stderr});
}

sub engineer_session
{
	my $s = $node->background_psql($db,
		extra_params => [ '-U', 'hr_eng' ],
		on_error_stop => 0);
	my ($pid) = session_query($s, 'SELECT pg_backend_pid()');
	return ($s, $pid);
}

sub alive
{
	my ($pid) = @_;
	return sql("SELECT count(*) FROM pg_stat_activity WHERE pid = $pid");
}

my $id = as_role('hr_eng',
	q{SELECT lockbox_request('acme', 'reads acme rows for a case', duration => '1 hour')});
as_role('hr_rev', "SELECT lockbox_approve($id)");
is(as_role('hr_app', "SELECT lockbox_approve($id)"), 'approved', 'access approved');

my ($before, $before_pid) = engineer_session();
my ($out) = session_query($before, 'SELECT count(*) FROM acme_data');
is($out, '1', 'the engineer reads acme\'s row');

# a session (no engineer) holds the request locked
my $holder = $node->background_psql($db, on_error_stop => 0);
session_query($holder, 'BEGIN');
session_query($holder, "SELECT id FROM lockbox.request WHERE id = $id FOR UPDATE");

is(as_role('hr_app', "SELECT lockbox_revoke($id, 'the customer withdrew consent')"),
	'revoked', 'an approver revokes the access while the row is held');
is(sql("SELECT count(*) FROM lockbox.revocation WHERE request_id = $id"),
	'1', 'the revocation is recorded beside the held request');
ok($node->poll_query_until($db, "SELECT count(*) FROM pg_stat_activity WHERE pid = $before_pid", '0'),
	'the engineer\'s session from before the revocation is ended');

# a session opened after the revocation, through many retries of the worker
my ($after, $after_pid) = engineer_session();
my $ended0 = sql('SELECT sessions_ended FROM lockbox.stats');
my $passes0 = sql('SELECT worker_passes FROM lockbox.stats');
sleep(2);
is(alive($after_pid), '1',
	'a session the engineer opened after the revocation is not ended by the retries');
cmp_ok(sql('SELECT worker_passes FROM lockbox.stats') - $passes0, '>=', 5,
	'the worker retried meanwhile');
is(sql('SELECT sessions_ended FROM lockbox.stats') - $ended0, 0,
	'no session ended by those retries');
my $err;
($out, $err) = session_query($after, 'SELECT count(*) FROM acme_data');
like($err, qr/no approved lockbox access to table/,
	'that session cannot use the revoked access');

session_query($holder, 'ROLLBACK');
eval { $holder->quit };
ok($node->poll_query_until($db, "SELECT state FROM lockbox.request WHERE id = $id", 'revoked'),
	'once the row is free, the request is revoked');
is(alive($after_pid), '1', 'and the later session is still there');
eval { $after->quit };

$node->stop;
done_testing();
