# What a DBA meets running lockbox on a hot standby (README "The worker",
# "Upgrading", "Replicas"), as 040 checks on a primary:
#
# - Between a standby's restart onto a newer library and the replay of the
#   primary's ALTER EXTENSION lockbox UPDATE, every pass of the standby's
#   worker fails: it logs each failure once per pause, the pause growing as
#   on a primary (1s, 2s, 4s ...), not twice a second.  Once the update is
#   replayed it works again.
# - A clean shutdown of the standby ends lockbox's worker waiting between
#   passes without a FATAL line.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use File::Basename qw(dirname);

# the current version (the control file's) and the one before it
my $control = slurp_file(dirname(__FILE__) . '/../../lockbox.control');
my ($current) = $control =~ /^default_version\s*=\s*'([^']+)'/m;
my ($major, $minor) = split /\./, $current;
my $previous = "$major." . ($minor - 1);

my $primary = PostgreSQL::Test::Cluster->new('ops_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$primary->start;
$primary->safe_psql('postgres', 'CREATE DATABASE old');
# objects of the previous version, as a standby restarted onto the new
# library sees them until the primary's update is replayed
$primary->safe_psql('old', qq{CREATE EXTENSION lockbox VERSION '$previous'});

$primary->backup('ops_backup');
my $standby = PostgreSQL::Test::Cluster->new('ops_standby');
$standby->init_from_backup($primary, 'ops_backup', has_streaming => 1);
my $from = -s $standby->logfile // 0;
$standby->start;

my $mismatch = qr/lockbox's objects in database "old" are version \Q$previous\E/;
ok($standby->wait_for_log($mismatch, $from),
	'the standby\'s worker reports the old objects');
sleep 6;
my @lines = (slurp_file($standby->logfile, $from) =~ /$mismatch/g);
cmp_ok(scalar(@lines), '<=', 5,
	'once per pause (1s, 2s, 4s ...) in the first six seconds, not twice a second');

$primary->safe_psql('old', 'ALTER EXTENSION lockbox UPDATE');
$primary->wait_for_catchup($standby, 'replay');
ok( $standby->poll_query_until(
		'old', q{SELECT extversion FROM pg_extension WHERE extname = 'lockbox'},
		$current),
	'the update is replayed');

# the worker waits between passes, then the standby stops cleanly
ok( $standby->poll_query_until(
		'postgres',
		q{SELECT bool_and(wait_event IS NOT DISTINCT FROM 'Extension') FROM pg_stat_activity
		   WHERE backend_type IN ('lockbox worker', 'lockbox launcher')}),
	'lockbox\'s processes on the standby wait between passes');
$from = -s $standby->logfile;
$standby->stop('fast');
my $stop_log = slurp_file($standby->logfile, $from);
like($stop_log, qr/database system is shut down/, 'the standby stopped');
unlike($stop_log, qr/FATAL:  terminating background worker "lockbox/,
	'lockbox\'s worker on the standby stops without a FATAL line');

$primary->stop;
done_testing();
