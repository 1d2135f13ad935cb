# pg_upgrade of a server with lockbox (README, "Upgrading"): the access
# records still waiting in the old server's spool ($PGDATA/lockbox_spool)
# are audited by the new server once the spool's database directories are
# copied over with the README's commands (run as they stand; they also work
# when the spool holds no database's directory), exactly once, and the
# audit verifies.
#
# The old server keeps a record unaudited deterministically: it has no
# background worker slot for the database's worker (max_worker_processes 1,
# taken by lockbox's launcher), so records wait in the spool, as those of the
# last moments before any shutdown may.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = abs_path(dirname(__FILE__) . '/../..');

my $old = PostgreSQL::Test::Cluster->new('old');
$old->init;
$old->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
max_worker_processes = 1
max_logical_replication_workers = 0
max_parallel_workers = 0
});
$old->start;
$old->safe_psql('postgres', 'CREATE DATABASE shop');
$old->safe_psql(
	'shop', q{
CREATE EXTENSION lockbox;
CREATE ROLE erin LOGIN IN ROLE lockbox_engineer;
CREATE TABLE invoices (id int, tenant text);
SELECT lockbox_add_tenant('acme');
SELECT lockbox_protect('invoices', tenant_column => 'tenant');
});
my ($ret, $out, $err) =
  $old->psql('shop', 'SELECT * FROM invoices WHERE id = 42', extra_params => [ '-U', 'erin' ]);
like($err, qr/no approved lockbox access/, 'the engineer is refused on the old server');
is($old->safe_psql('shop', q{SELECT count(*) FROM lockbox.audit WHERE event = 'refused'}),
	'0', 'the refusal waits in the spool (no worker)');
my $dboid = $old->safe_psql('shop',
	q{SELECT oid FROM pg_database WHERE datname = 'shop'});
$old->stop;

my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
$new->append_conf('postgresql.conf', q{shared_preload_libraries = 'lockbox'});

my $bindir = $new->config_data('--bindir');
chdir $PostgreSQL::Test::Utils::tmp_check;
command_ok(
	[
		'pg_upgrade', '--no-sync',
		'-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $bindir, '-B', $bindir,
		'-s', $new->host,
		'-p', $old->port, '-P', $new->port
	],
	'pg_upgrade');

# README: copy each database's spool directory into the new data directory
# before starting it (pg_upgrade keeps database OIDs), with the README's
# commands as they stand
my $readme = slurp_file("$root/README.md");
my ($copy) = ($readme =~
	  /copy each database's spool directory.*?```sh\n(.*?)```/s);
ok(defined $copy, 'the README has the commands');

sub run_copy
{
	my ($old_pgdata, $new_pgdata) = @_;
	local $ENV{OLD_PGDATA} = $old_pgdata;
	local $ENV{NEW_PGDATA} = $new_pgdata;
	return run_log([ 'bash', '-euo', 'pipefail', '-c', $copy ]);
}

# a server whose spool holds no database's directory (no engineer's
# statement ever spooled there): nothing to copy, and no error
my $empty = PostgreSQL::Test::Utils::tempdir();
mkdir "$empty/old";
mkdir "$empty/old/lockbox_spool";
mkdir "$empty/new";
ok(run_copy("$empty/old", "$empty/new"),
	'the commands succeed when the old spool has no database directory');

my $from = $old->data_dir . "/lockbox_spool/$dboid";
ok(-d $from, 'the old spool has the database\'s directory');
ok(run_copy($old->data_dir, $new->data_dir), 'the commands copy it');
ok(-d $new->data_dir . "/lockbox_spool/$dboid", 'into the new data directory');

$new->start;
ok( $new->poll_query_until(
		'shop',
		q{SELECT count(*) FROM lockbox.audit WHERE event = 'refused'}, '1'),
	'the new server audits the record the old one spooled');
is( $new->safe_psql(
		'shop', q{SELECT engineer || ': ' || query FROM lockbox.access_log}),
	'erin: SELECT * FROM invoices WHERE id = 42',
	'as the engineer ran it');
is($new->safe_psql('shop', 'SELECT ok FROM lockbox_verify_audit()'),
	't', 'the audit verifies');
$new->restart;
sleep 2;
is($new->safe_psql('shop', q{SELECT count(*) FROM lockbox.audit WHERE event = 'refused'}),
	'1', 'once, also after a restart');
$new->stop;

done_testing();
