# pg_upgrade of a server with lockbox (README, "Upgrading"): the access
# records still waiting in the old server's spool ($PGDATA/lockbox_spool)
# are audited by the new server once the spool's database directories are
# copied over as the README says, exactly once, and the audit verifies.
#
# The old server keeps a record unaudited deterministically: it has no
# background worker slot for the database's worker (max_worker_processes 1,
# taken by lockbox's launcher), so records wait in the spool, as those of the
# last moments before any shutdown may.
use strict;
use warnings;
use File::Copy;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

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
# before starting it (pg_upgrade keeps database OIDs)
my $from = $old->data_dir . "/lockbox_spool/$dboid";
my $to = $new->data_dir . "/lockbox_spool/$dboid";
ok(-d $from, 'the old spool has the database\'s directory');
make_path($to, { mode => 0700 });
opendir(my $dh, $from) or die "opendir $from: $!";
for my $f (grep { !/^\./ } readdir $dh)
{
	copy("$from/$f", "$to/$f") or die "copy $f: $!";
}
closedir $dh;

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
