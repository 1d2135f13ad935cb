# What an engineer or a database owner could do to keep lockbox's worker
# from doing its job, each closed:
#
# - An engineer holding their own request's row (lockbox_close in a
#   transaction left open) does not outlive the window: the worker cannot
#   close the request while the row is held, but it ends the engineer's
#   sessions anyway, and then closes it.
# - A database owner cannot pause the worker with ALTER DATABASE ... RENAME
#   that then fails (no CREATEDB, or a name already taken): the worker is
#   only stopped for a command that will run.
# - ALTER DATABASE ... SET default_transaction_read_only = on (and timeouts)
#   do not stop the worker's passes after a restart.
# - Plain CREATE DATABASE (template1 implied) works at once when lockbox is
#   installed in template1.
# - DROP SCHEMA ... CASCADE of lockbox's schema is refused while tables are
#   protected (it would drop the extension and its policies and leave the
#   tables open to every engineer).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('hostile');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
});
$node->start;

my $db = 'hx';
LockboxTest::setup($node, $db);
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE hx_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE hx_rev IN ROLE lockbox_reviewer;
CREATE ROLE hx_app IN ROLE lockbox_approver;
CREATE ROLE hx_dbowner LOGIN;
CREATE ROLE hx_noinh LOGIN NOINHERIT IN ROLE hx_eng;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'hx_app');
CREATE TABLE acme_data (tenant text, v int);
INSERT INTO acme_data VALUES ('acme', 1), ('acme', 2), ('globex', 3);
SELECT lockbox_protect('acme_data', tenant_column => 'tenant');
});
$node->safe_psql('postgres', "ALTER DATABASE $db OWNER TO hx_dbowner");

sub worker_pid
{
	my ($d) = @_;
	$d //= $db;
	$node->poll_query_until('postgres', qq{
		SELECT count(*) FROM pg_stat_activity
		 WHERE backend_type = 'lockbox worker' AND datname = '$d'}, '1')
	  or die "no lockbox worker for $d";
	return sql(qq{SELECT pid FROM pg_stat_activity
		 WHERE backend_type = 'lockbox worker' AND datname = '$d'}, 'postgres');
}

sub approved_request
{
	my ($duration) = @_;
	my $id = sql("SET SESSION AUTHORIZATION hx_eng;
		SELECT lockbox_request('acme', 'hold the row past the window', duration => '$duration')");
	sql("SET SESSION AUTHORIZATION hx_rev; SELECT lockbox_approve($id)");
	sql("SET SESSION AUTHORIZATION hx_app; SELECT lockbox_approve($id)");
	return $id;
}

# ---------------------------------------------------------------------------
# An engineer holding their request's row does not outlive the window
# ---------------------------------------------------------------------------
my $pid1 = worker_pid();
my $id = approved_request('3 seconds');
my $eng = $node->background_psql($db, extra_params => [ '-U', 'hx_eng' ],
	on_error_stop => 0);
my $eng_pid = $eng->query('SELECT pg_backend_pid()');
is($eng->query('SELECT count(*) FROM acme_data'), '2', 'the engineer reads acme in the window');
$eng->query("BEGIN; SELECT lockbox_close($id)");
is(sql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		 WHERE a.pid = $eng_pid AND l.locktype = 'transactionid'"), '1',
	'the engineer holds an open transaction that has the request row');
ok($node->poll_query_until($db, "SELECT count(*) FROM pg_stat_activity WHERE pid = $eng_pid", '0'),
	'the engineer\'s session holding the row is ended after the window');
eval { $eng->query('SELECT 1') };
like($eng->{stderr}, qr/FATAL:  terminating connection: lockbox ended this engineer's access\n.*DETAIL:  The access window of lockbox request $id has ended\./s,
	'the engineer is told lockbox ended the session, and why');
my $late = time() - sql("SELECT extract(epoch FROM access_ends_at) FROM lockbox.request WHERE id = $id");
cmp_ok($late, '<', 5, sprintf('within seconds of the window\'s end (%.1fs after it)', $late));
ok($node->poll_query_until($db, "SELECT state || ' ' || close_reason FROM lockbox.request WHERE id = $id",
		'closed window_elapsed'),
	'the worker closes the request once the row is free');
eval { $eng->quit };

# A member of the engineer that does not inherit its privileges, working
# as it with SET ROLE (a cursor opened in the window would still return
# rows): its session is ended too
my $id_n = approved_request('3 seconds');
my $noinh = $node->background_psql($db, extra_params => [ '-U', 'hx_noinh' ],
	on_error_stop => 0);
my $noinh_pid = $noinh->query('SELECT pg_backend_pid()');
is($noinh->query('SET ROLE hx_eng; SELECT count(*) FROM acme_data'), '2',
	'a NOINHERIT member, as the engineer, reads acme in the window');
$noinh->query('BEGIN; DECLARE c CURSOR FOR SELECT * FROM acme_data; FETCH 1 FROM c');
ok($node->poll_query_until($db, "SELECT count(*) FROM pg_stat_activity WHERE pid = $noinh_pid", '0'),
	'its session is ended when the window ends');
eval { $noinh->quit };

# ---------------------------------------------------------------------------
# A database owner cannot pause the worker with commands that then fail
# ---------------------------------------------------------------------------
$pid1 = worker_pid();
my ($rc, $out, $err) = $node->psql('postgres', "ALTER DATABASE $db RENAME TO hx2",
	extra_params => [ '-U', 'hx_dbowner' ]);
like($err, qr/permission denied to rename database/, 'RENAME without CREATEDB fails');
is(worker_pid(), $pid1, '... and the worker was not stopped for it');
sql('ALTER ROLE hx_dbowner CREATEDB', 'postgres');
($rc, $out, $err) = $node->psql('postgres', "ALTER DATABASE $db RENAME TO postgres",
	extra_params => [ '-U', 'hx_dbowner' ]);
like($err, qr/already exists/, 'RENAME to a name taken fails');
is(worker_pid(), $pid1, '... and the worker was not stopped for it');
# a command that passes every check but fails all the same: the worker is
# back at once, not after a pause
my $holder = $node->background_psql($db, extra_params => [ '-U', 'hx_dbowner' ]);
$holder->query('SELECT 1');
($rc, $out, $err) = $node->psql('postgres', "ALTER DATABASE $db RENAME TO hx3",
	extra_params => [ '-U', 'hx_dbowner' ]);
like($err, qr/being accessed by other users/, 'RENAME while the owner is connected fails');
is(worker_pid(), $pid1, '... and the worker was not stopped for it');
$holder->quit;

# ---------------------------------------------------------------------------
# Database settings cannot stop the worker's passes
# ---------------------------------------------------------------------------
# (the test reads and writes as hx_checker, whose own settings undo them)
sql(q{CREATE ROLE hx_checker LOGIN SUPERUSER;
	ALTER ROLE hx_checker SET default_transaction_read_only = off;
	ALTER ROLE hx_checker SET statement_timeout = 0;
	ALTER ROLE hx_checker SET lock_timeout = 0;}, 'postgres');
sql("ALTER DATABASE $db SET default_transaction_read_only = on", 'postgres');
sql("ALTER DATABASE $db SET statement_timeout = '1ms'", 'postgres');
sql("ALTER DATABASE $db SET lock_timeout = '1ms'", 'postgres');
$node->restart;
{
	local $ENV{PGUSER} = 'hx_checker';
	worker_pid();
	my $id2 = approved_request('2 seconds');
	ok($node->poll_query_until($db, "SELECT state FROM lockbox.request WHERE id = $id2",
			'closed'),
		'the worker closes the window despite read-only and timeout settings on the database');
	sql("ALTER DATABASE $db RESET ALL", 'postgres');
}

# ---------------------------------------------------------------------------
# CREATE DATABASE from template1 with lockbox in template1
# ---------------------------------------------------------------------------
sql('CREATE EXTENSION lockbox', 'template1');
worker_pid('template1');
my $t0 = time();
sql('CREATE DATABASE hx_copy', 'postgres');
my $took = time() - $t0;
cmp_ok($took, '<', 3, sprintf('plain CREATE DATABASE works at once (%.1fs)', $took));
worker_pid('template1');
pass('the worker of template1 is back');
sql('DROP DATABASE hx_copy', 'postgres');
sql('DROP EXTENSION lockbox', 'template1');

# ---------------------------------------------------------------------------
# DROP SCHEMA ... CASCADE of lockbox's schema
# ---------------------------------------------------------------------------
sql('CREATE DATABASE hx_schema', 'postgres');
sql(q{
CREATE SCHEMA lb;
CREATE EXTENSION lockbox SCHEMA lb;
SELECT lb.lockbox_add_tenant('acme');
CREATE TABLE public.notes (tenant text, note text);
SELECT lb.lockbox_protect('public.notes', tenant_column => 'tenant');
}, 'hx_schema');
($rc, $out, $err) = $node->psql('hx_schema', 'DROP SCHEMA lb CASCADE');
like($err, qr/cannot drop or change the lockbox policies of protected table "notes"/,
	'DROP SCHEMA ... CASCADE of lockbox\'s schema is refused while a table is protected');
is(sql(q{SELECT count(*) FROM pg_policy WHERE polrelid = 'public.notes'::regclass
		 AND polname LIKE 'lockbox\_%' AND polname <> 'lockbox_open'}, 'hx_schema'),
	'4', 'the policies are still there');
sql(q{SELECT lb.lockbox_unprotect('public.notes'); DROP SCHEMA lb CASCADE;}, 'hx_schema');
is(sql(q{SELECT has_table_privilege('lockbox_engineer', 'public.notes', 'SELECT')
		  || ' ' || relrowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass},
		'hx_schema'),
	'false false', 'after lockbox_unprotect the extension goes, leaving no access behind');

$node->stop;
done_testing();
