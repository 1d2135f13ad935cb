# At most 64 databases with lockbox are served (README, "The worker"); a
# 65th waits for a slot, named once, and is served as soon as one frees.
#
# - CREATE EXTENSION in a 65th database warns, naming it; lockbox.worker
#   lists it as not served.
# - After a restart, 64 are served and the one left out is named once in
#   the log, not at every read of the launcher.
# - DROP EXTENSION in a served database gives the waiting one its slot; so
#   does DROP DATABASE.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;

my $node = PostgreSQL::Test::Cluster->new('limit');
LockboxTest::setup($node, 'postgres');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
max_worker_processes = 80
max_connections = 150
});
$node->start;

my $workers =
  q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'lockbox worker'};

sub served_in
{
	my ($db) = @_;
	return $node->poll_query_until('postgres',
		qq{SELECT count(*) FROM pg_stat_activity
		    WHERE backend_type = 'lockbox worker' AND datname = '$db'}, '1');
}

my @dbs = map { sprintf('lb%02d', $_) } 1 .. 65;
for my $db (@dbs[ 0 .. 63 ])
{
	sql("CREATE DATABASE $db");
	sql('CREATE EXTENSION lockbox', $db);
}
ok($node->poll_query_until('postgres', $workers, '64'), '64 databases served');

sql('CREATE DATABASE lb65');
my ($ret, $out, $err) = $node->psql('lb65', 'CREATE EXTENSION lockbox');
is($ret, 0, 'CREATE EXTENSION in a 65th database succeeds');
like($err,
	qr/WARNING:  lockbox serves at most 64 databases; database "lb65" is not served/,
	'with a warning naming it');
is(sql(q{SELECT state FROM lockbox.worker WHERE database = 'lb65'}, 'lb65'),
	'not served: no slot free', 'lockbox.worker lists it as not served');

my $restarted = -s $node->logfile;
$node->restart;
ok($node->poll_query_until('postgres', $workers, '64'), 'after a restart, 64 are served');
# (the launcher names the one left out in the read of pg_database that
# starts the 64 workers, before it starts them)
my $not_served_re = qr/lockbox serves at most 64 databases; database "(lb\d\d)" is not served/;
my $log = substr(slurp_file($node->logfile), $restarted);
my @not_served = ($log =~ /$not_served_re/g);
ok(scalar(@not_served) >= 1, 'the one left out is named in the log');
my $waiting = $not_served[0] // 'none';
# (right after the restart, autovacuum may be visiting the new database)
is( sql(qq{SELECT count(*) FROM pg_stat_activity
		WHERE datname = '$waiting' AND backend_type <> 'autovacuum worker'}),
	'0', "$waiting has no worker");
unlike($log, qr/could not start/, 'no worker failed to start');

my ($first, $second) = grep { $_ ne $waiting } @dbs;
my $from = -s $node->logfile;
sql('DROP EXTENSION lockbox', $first);
ok(served_in($waiting), "DROP EXTENSION in $first: $waiting is served");
like(substr(slurp_file($node->logfile), $from),
	qr/lockbox serves database "$waiting" now that a slot is free/, 'the log says so');
# Every start of a worker, and the exit of $first's, made the launcher read
# pg_database again, the last time in the read that served $waiting: named
# once, not at every read.
@not_served = (substr(slurp_file($node->logfile), $restarted) =~ /$not_served_re/g);
is(scalar(@not_served), 1, 'the one left out was named once, not at each later read of the launcher')
  or diag(join(',', @not_served));
is(sql($workers), '64', 'still 64');

sql('CREATE DATABASE lb66');
($ret, $out, $err) = $node->psql('lb66', 'CREATE EXTENSION lockbox');
like($err, qr/database "lb66" is not served/, 'a 66th waits again');
sql("DROP DATABASE $second");
ok(served_in('lb66'), "DROP DATABASE $second: lb66 is served");
is(sql($workers), '64', 'still 64');

$node->stop;
done_testing();
