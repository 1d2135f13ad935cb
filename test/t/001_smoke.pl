# Smoke test of the TAP harness in test/run.sh, not of lockbox: a node with
# lockbox in shared_preload_libraries starts and answers a query. The real
# crash, restart and deadline tests replace it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('smoke');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'lockbox', 'lockbox is preloaded');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the node answers queries');

$node->stop;
done_testing();
