# The launcher serves the databases where lockbox is created, and only
# those, without visiting the others or flooding the log (README, "The
# worker").
#
# - 72 databases, 5 of them with lockbox, PostgreSQL's default
#   max_worker_processes (8): after a restart each of the 5 has its worker,
#   and no worker is started for the others, also at the launcher's later
#   reads of pg_database (one at a reload; the postmaster's DEBUG1 lines name every
#   background worker it starts); the launcher reads pg_shdepend itself,
#   once, starting no worker for it.
# - A database where lockbox_engineer was granted USAGE on a schema by hand,
#   without lockbox, is visited once, not at every read.
# - No warning, and no "not served" line, in the log.
# - A database created from a template with lockbox is served within seconds.
# - With no background worker slot left, a new lockbox database (CREATE
#   EXTENSION, no restart) is named once in the log, by name, not at every
#   retry, and is served as soon as DROP EXTENSION elsewhere frees a slot;
#   the same after DROP DATABASE.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('launcher');
LockboxTest::setup($node, 'postgres');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
max_worker_processes = 8
});
$node->start;

my $workers =
  q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'lockbox worker'};

sub served
{
	return sql(q{
		SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '')
		  FROM pg_stat_activity WHERE backend_type = 'lockbox worker'});
}

sub served_in
{
	my ($db) = @_;
	return $node->poll_query_until('postgres',
		qq{SELECT count(*) FROM pg_stat_activity
		    WHERE backend_type = 'lockbox worker' AND datname = '$db'}, '1');
}

# the log written since offset $from
sub log_since
{
	my ($from) = @_;
	return substr(slurp_file($node->logfile), $from);
}

# 67 databases without lockbox, 5 with it
sql(join(";\n", map { "CREATE DATABASE plain$_" } 1 .. 67));
for my $i (1 .. 5)
{
	sql("CREATE DATABASE lb$i");
	sql('CREATE EXTENSION lockbox', "lb$i");
}
is(sql('SELECT count(*) FROM pg_database WHERE datname ~ $$^(plain|lb)$$'),
	'72', '72 databases');
ok($node->poll_query_until('postgres', $workers, '5'),
	'the five databases with lockbox are served');

# a database that looks like one with lockbox and is not
sql('GRANT USAGE ON SCHEMA public TO lockbox_engineer', 'plain1');

$node->append_conf('postgresql.conf', 'log_min_messages = debug2');
my $from = -s $node->logfile;
$node->restart;
ok($node->poll_query_until('postgres', $workers, '5'),
	'after a restart, the five are served again');
is(served(), 'lb1,lb2,lb3,lb4,lb5', 'each by a worker of its own');
ok( $node->poll_query_until('postgres',
		'SELECT count(*) FROM pg_stat_activity WHERE datname = $$plain1$$', '0'),
	'the worker for the database without lockbox is gone');
ok($node->wait_for_log(qr/lockbox does not serve database "plain1"/, $from),
	'the launcher noted it');
# a reload makes the launcher read pg_database again at once (as it does
# every 10 seconds)
my $reload_from = -s $node->logfile;
sql('SELECT pg_reload_conf()');
ok($node->wait_for_log(qr/lockbox launcher read pg_database/, $reload_from),
	'the launcher reads pg_database again at a reload');
my $log = log_since($from);
my %started;
$started{$_}++
  for ($log =~ /starting background worker process "lockbox worker for database ([^"]+)"/g);
is(join(',', map { "$_:$started{$_}" } sort keys %started),
	'lb1:1,lb2:1,lb3:1,lb4:1,lb5:1,plain1:1',
	'a worker started once for each database with lockbox and for the one with a grant to lockbox_engineer; none for the 66 others');
unlike($log, qr/starting background worker process "lockbox scan/,
	'no background worker is started to read pg_shdepend');
my @scans = ($log =~ /lockbox launcher read pg_shdepend: (\d+) databases with lockbox/g);
is(join(',', @scans), '6',
	'the launcher reads it itself, once: the five databases and the one with a grant to lockbox_engineer');
# what lockbox wrote once the server was up again (not DEBUG, not the
# statements of this test)
my ($since_start) = ($log =~ /ready to accept connections(.*)\z/s);
my @lockbox_lines =
  grep { /lockbox/ && !/DEBUG|statement:|^\s/ } split /\n/, $since_start // '';
unlike($log, qr/WARNING/, 'no warning in the log');
unlike($log, qr/not served/, 'no "not served" line');
is(scalar(@lockbox_lines), 1,
	'one line about lockbox since the start: the database without it')
  or diag(join("\n", @lockbox_lines));
like($lockbox_lines[0] // '',
	qr/lockbox does not serve database "plain1": the extension is not installed there/,
	'naming it');
$node->append_conf('postgresql.conf', 'log_min_messages = warning');
$node->reload;

# a database created from a template with lockbox has lockbox: served
my $t0 = time();
sql('CREATE DATABASE lb6 TEMPLATE lb1');
ok(served_in('lb6'), 'a database copied from a template with lockbox is served');
cmp_ok(time() - $t0, '<', 5, 'within seconds, not at a later read');
ok(served_in('lb1'), 'the template is served again after the copy');

# no background worker slot left: 8 = lockbox's launcher, the logical
# replication launcher and six workers
$from = -s $node->logfile;
sql('CREATE DATABASE lb7');
sql('CREATE EXTENSION lockbox', 'lb7');
sleep(5);
$log = log_since($from);
my @warnings = ($log =~ /WARNING:  lockbox could not start a worker for database "([^"]+)"/g);
is(join(',', @warnings), 'lb7',
	'CREATE EXTENSION with no worker slot left: named once in 5 seconds, by name');
like(sql('SELECT state FROM lockbox.worker WHERE database = current_database()', 'lb7'),
	qr/waiting for a background worker slot/, 'lockbox.worker says it waits');

sql('DROP EXTENSION lockbox', 'lb6');
ok(served_in('lb7'), 'DROP EXTENSION elsewhere frees a slot: served');
like(log_since($from), qr/lockbox started the worker for database "lb7"/,
	'the log says so, once');
is(served(), 'lb1,lb2,lb3,lb4,lb5,lb7', 'and the database without lockbox is not');

$from = -s $node->logfile;
sql('CREATE DATABASE lb8');
sql('CREATE EXTENSION lockbox', 'lb8');
sleep(3);
sql('DROP DATABASE lb2');
ok(served_in('lb8'), 'DROP DATABASE frees a slot: served');
@warnings = (log_since($from) =~ /lockbox could not start a worker for database "([^"]+)"/g);
is(join(',', @warnings), 'lb8', 'named once while it waited');
is(served(), 'lb1,lb3,lb4,lb5,lb7,lb8', 'the workers now');

$node->stop;
done_testing();
