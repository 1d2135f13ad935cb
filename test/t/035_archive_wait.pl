# lockbox_archive_audit waits a bounded time for the transactions writing
# audit rows (README, Retention).  Its ACCESS EXCLUSIVE lock, while queued,
# holds back every writer of audit rows -- every lifecycle step, the
# worker's records of engineers' statements -- so an engineer leaving a
# transaction open after lockbox_request held back every lockbox step for
# as long as the transaction stayed open.  Now the archive gives up after
# 2 seconds (55P03, nothing archived), and the lifecycle goes on.  Its error
# names the sessions it waited for, whatever they are (a reader's open
# transaction, as a pg_dump's, too).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('archive_wait');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->start;

my $db = 'aw';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE aw_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE aw_eng2 IN ROLE lockbox_engineer;
SELECT lockbox_add_tenant('acme');
CREATE TABLE acme_data (tenant text, v int);
SELECT lockbox_protect('acme_data', tenant_column => 'tenant');
});

# the engineer files a request and leaves the transaction open
my $eng = $node->background_psql($db,
	extra_params => [ '-U', 'aw_eng' ],
	on_error_stop => 0);
my $eng_pid = $eng->query('SELECT pg_backend_pid()');
$eng->query('BEGIN');
my $filed = $eng->query(
	q{SELECT lockbox_request('acme', 'reads acme rows for a case') > 0});
is($filed, 't', 'the engineer files a request in a transaction left open');

# the archive (statement_timeout: it waited for ever before)
my $start = time();
my ($ret, $out, $err) = $node->psql($db,
	q{SET statement_timeout = '30s';
	  SELECT * FROM lockbox_archive_audit(now() - interval '1 second')},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
my $waited = time() - $start;
like($err, qr/55P03.*could not lock the lockbox audit log to archive it/,
	'the archive gives up on the open transaction (55P03)');
cmp_ok($waited, '<', 15, 'after a bounded wait');
like($err, qr/DETAIL:  Sessions hold locks on it \(process IDs [^)]*\b$eng_pid\b/,
	'naming the session it waited for');

# the lifecycle goes on, the engineer's transaction still open
is( $node->safe_psql(
		$db, q{SET statement_timeout = '10s'; SET SESSION AUTHORIZATION aw_eng2;
		SELECT lockbox_request('acme', 'another case of acme rows') > 0}),
	't', 'another engineer files a request meanwhile');

$eng->query('COMMIT');
eval { $eng->quit };

# a reader holds it back as well (a pg_dump holds its lock for the whole
# dump): the error names it, and does not say it wrote audit rows
my $reader = $node->background_psql($db);
my $reader_pid = $reader->query('SELECT pg_backend_pid()');
$reader->query('BEGIN');
$reader->query('SELECT count(*) FROM lockbox.audit_log');
($ret, $out, $err) = $node->psql($db,
	q{SELECT * FROM lockbox_archive_audit(now() - interval '1 second')});
like($err, qr/DETAIL:  Sessions hold locks on it \(process IDs [^)]*\b$reader_pid\b/,
	'a reader in an open transaction is named too');
$reader->query('COMMIT');
$reader->quit;

is($node->safe_psql($db, q{SELECT count(*) FROM lockbox.requests}),
	'2', 'both requests are there');
is($node->safe_psql($db, q{SELECT ok FROM lockbox_verify_audit()}),
	't', 'the audit verifies');

$node->stop;
done_testing();
