# Backups of a lockbox database, as the README's section "Backups" tells.
#
# Database "shop" holds two protected tables: invoices, on which
# lockbox_protect turned row-level security on, and orders, which had a
# policy of its own before.  A request runs through to closed.
#
# - pg_dump as a role with pg_read_all_data and no BYPASSRLS fails on a
#   protected table (pg_dump sets row_security = off);
# - with --enable-row-security it succeeds, and dumps every row of invoices
#   (lockbox's policies are for lockbox_engineer only) but none of orders
#   (its own policy shows the role none): not a backup;
# - a BYPASSRLS role with pg_read_all_data dumps what the superuser dumps;
# - restored on a fresh server without the roles, the COPY of lockbox's
#   tables that name roles fails; with pg_dumpall --globals-only restored
#   first, pg_restore succeeds, the audit verifies, the table is protected.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = PostgreSQL::Test::Cluster->new('backup_src');
$src->init;
$src->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$src->start;

$src->safe_psql('postgres', 'CREATE DATABASE shop');
$src->safe_psql(
	'shop', q{
CREATE EXTENSION lockbox;
CREATE ROLE bk_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE bk_rev LOGIN IN ROLE lockbox_reviewer;
CREATE ROLE bk_app LOGIN IN ROLE lockbox_approver;
CREATE ROLE bk_reader LOGIN IN ROLE pg_read_all_data;
CREATE ROLE bk_backup LOGIN BYPASSRLS IN ROLE pg_read_all_data;
CREATE TABLE invoices (id int PRIMARY KEY, tenant text NOT NULL, total numeric);
INSERT INTO invoices VALUES (1, 'acme', 10), (2, 'acme', 11), (3, 'globex', 20);
CREATE TABLE orders (id int PRIMARY KEY, tenant text NOT NULL);
INSERT INTO orders VALUES (1, 'acme'), (2, 'globex');
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY app_tenant ON orders USING (tenant = current_setting('app.tenant', true));
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'bk_app');
SELECT lockbox_protect('invoices', tenant_column => 'tenant');
SELECT lockbox_protect('orders', tenant_column => 'tenant');
});

sub as_role
{
	my ($node, $role, $sql) = @_;
	return $node->safe_psql('shop', "SET SESSION AUTHORIZATION $role; $sql");
}

my $id = as_role($src, 'bk_eng',
	q{SELECT lockbox_request('acme', 'invoice totals look wrong', duration => '1 hour')});
as_role($src, 'bk_rev', "SELECT lockbox_approve($id)");
is(as_role($src, 'bk_app', "SELECT lockbox_approve($id)"), 'approved', 'the request is approved');
is(as_role($src, 'bk_eng', 'SELECT count(*) FROM invoices'), '2', 'the engineer reads acme');
is(as_role($src, 'bk_eng', "SELECT lockbox_close($id, 'done')"), 'closed', 'and closes it');
ok($src->poll_query_until('shop', q{SELECT count(*) FROM lockbox.audit_log WHERE event = 'access'}, '1'),
	'the read is in the audit');

my $dir = $src->basedir;
my $connstr = sub { $src->connstr('shop') . " user=$_[0]" };

# the rows of one table in a plain dump
sub copy_rows
{
	my ($file, $table) = @_;
	my $text = slurp_file($file);
	$text =~ /^COPY public\.$table \([^)]*\) FROM stdin;\n(.*?)^\\\.$/ms
	  or die "no COPY of $table in $file";
	return scalar(() = $1 =~ /\n/g);
}

# --- a role subject to row-level security ----------------------------------
my ($stdout, $stderr);
my $ok = IPC::Run::run [ 'pg_dump', '-d', $connstr->('bk_reader'), '-f', "$dir/reader.sql" ],
  '>', \$stdout, '2>', \$stderr;
ok(!$ok, 'pg_dump as a role with pg_read_all_data and no BYPASSRLS fails');
like(
	$stderr,
	qr/ERROR:  query would be affected by row-level security policy for table "(invoices|orders)"/,
	'on a protected table, as row-level security would filter it');

$src->command_ok(
	[ 'pg_dump', '--enable-row-security', '-d', $connstr->('bk_reader'), '-f', "$dir/rls_on.sql" ],
	'pg_dump --enable-row-security as that role succeeds');
is(copy_rows("$dir/rls_on.sql", 'invoices'), 3,
	'it dumps every row of a table on which lockbox_protect turned row-level security on');
is(copy_rows("$dir/rls_on.sql", 'orders'), 0,
	'but only the rows its own policies show the role of a table that had policies: none here');

# --- the backup role and the superuser ------------------------------------
$src->command_ok([ 'pg_dump', '-d', $connstr->('bk_backup'), '-f', "$dir/backup.sql" ],
	'pg_dump as a BYPASSRLS role with pg_read_all_data');
$src->command_ok([ 'pg_dump', '-d', $connstr->($src->safe_psql('postgres', 'SELECT current_user')),
		'-f', "$dir/super.sql" ], 'pg_dump as the superuser');
my $strip = sub {
	my $t = slurp_file(shift);
	$t =~ s/^\\(un)?restrict .*$//mg;    # a random key per dump
	return $t;
};
ok($strip->("$dir/backup.sql") eq $strip->("$dir/super.sql"),
	'the BYPASSRLS role dumps what the superuser dumps');
is(copy_rows("$dir/backup.sql", 'orders'), 2, 'every row of orders included');

$src->command_ok([ 'pg_dump', '-Fc', '-d', $connstr->('bk_backup'), '-f', "$dir/shop.dump" ],
	'pg_dump -Fc as the backup role');
$src->command_ok([ 'pg_dumpall', '--globals-only', '-d', $src->connstr('postgres'),
		'-f', "$dir/globals.sql" ], 'pg_dumpall --globals-only');

my %queries = (
	requests => 'SELECT id, tenant, requester, state, close_reason FROM lockbox.requests ORDER BY id',
	audit => q{SELECT seq, actor, event, encode(hash, 'hex') FROM lockbox.audit ORDER BY seq},
	protected => 'SELECT relation, tenant_column FROM lockbox.protected_tables ORDER BY 1');
my %before = map { $_ => $src->safe_psql('shop', $queries{$_}) } keys %queries;

# --- a fresh server --------------------------------------------------------
my $dst = PostgreSQL::Test::Cluster->new('backup_dst');
$dst->init;
$dst->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$dst->start;

$dst->safe_psql('postgres', 'CREATE DATABASE noroles');
($ok, $stdout, $stderr) = $dst->psql('noroles', undef,
	extra_params => [ '-v', 'ON_ERROR_STOP=0', '-f', "$dir/backup.sql" ]);
like($stderr, qr/ERROR:  role "bk_app" does not exist\nCONTEXT:  COPY approver/,
	'without the roles, the COPY of lockbox.approver fails');
like($stderr, qr/ERROR:  role "bk_eng" does not exist\nCONTEXT:  COPY request/,
	'and so does that of lockbox.request');
is($dst->safe_psql('noroles', 'SELECT count(*) FROM lockbox.request'), '0',
	'the restored database has no request');

$dst->command_ok([ 'psql', '-X', '-q', '-d', $dst->connstr('postgres'), '-f', "$dir/globals.sql" ],
	'the roles restored first (psql -f globals.sql)');
$dst->safe_psql('postgres', 'CREATE DATABASE shop');
$dst->command_ok([ 'pg_restore', '--exit-on-error', '-d', $dst->connstr('shop'), "$dir/shop.dump" ],
	'then pg_restore succeeds');
for my $what (sort keys %queries)
{
	is($dst->safe_psql('shop', $queries{$what}), $before{$what}, "the restore has the same $what");
}
is($dst->safe_psql('shop', 'SELECT ok FROM lockbox_verify_audit()'), 't', 'the restored audit verifies');
($ok, $stdout, $stderr) = $dst->psql('shop', 'SET SESSION AUTHORIZATION bk_eng; SELECT * FROM invoices');
like($stderr, qr/no approved lockbox access to table "public\.invoices"/,
	'the engineer is refused on the restored table');

$dst->stop;
$src->stop;
done_testing();
