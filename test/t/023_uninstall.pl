# Taking lockbox out of a server, in the order of the README's section
# "Uninstalling".
#
# Two databases have lockbox; one table had row-level security and a policy
# of its own before it was protected, another had none.  Without the library
# loaded, engineers' statements on protected tables fail or find no rows, and
# lockbox_unprotect fails.  With it: DROP EXTENSION is refused while tables are protected;
# lockbox_unprotect puts each table back as it was; DROP EXTENSION then
# drops lockbox's schema and its worker exits; the group roles stay until
# the extension is gone everywhere and DROP OWNED BY has taken the
# privileges granted to them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('uninstall');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql('postgres', 'CREATE DATABASE crm');
$node->safe_psql('crm', 'CREATE EXTENSION lockbox');
$node->safe_psql(
	'shop', q{
CREATE EXTENSION lockbox;
CREATE ROLE un_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE un_service LOGIN;
CREATE TABLE invoices (id int PRIMARY KEY, tenant text NOT NULL);
INSERT INTO invoices VALUES (1, 'acme'), (2, 'globex');
GRANT SELECT, INSERT ON invoices TO un_service;
CREATE TABLE orders (id int PRIMARY KEY, tenant text NOT NULL);
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_all ON orders TO un_service USING (true);
GRANT SELECT ON orders TO un_service, lockbox_engineer;
});

# how each table stands: row-level security, policies, privileges
my $state_sql = q{
SELECT c.relname, c.relrowsecurity,
	   (SELECT string_agg(polname, ',' ORDER BY polname) FROM pg_policy WHERE polrelid = c.oid),
	   c.relacl::text
  FROM pg_class c WHERE c.relname IN ('invoices', 'orders') ORDER BY 1};
my $before = $node->safe_psql('shop', $state_sql);

$node->safe_psql(
	'shop', q{
SELECT lockbox_protect('invoices', tenant_column => 'tenant');
SELECT lockbox_protect('orders', tenant_column => 'tenant');
});
isnt($node->safe_psql('shop', $state_sql), $before, 'lockbox_protect changed both tables');

# --- the library not loaded --------------------------------------------------
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->restart;
my ($ret, $out, $err) = $node->psql('shop', 'SET SESSION AUTHORIZATION un_eng; SELECT * FROM invoices');
like($err, qr/ERROR:  lockbox must be loaded via shared_preload_libraries/,
	'without the library, an engineer\'s statement on a protected table fails');
is($node->safe_psql('shop', 'SET SESSION AUTHORIZATION un_eng; SELECT count(*) FROM orders'),
	'0', 'or, where no policy of the table\'s own lets the engineer see rows, finds none');
is($node->safe_psql('shop', 'SET SESSION AUTHORIZATION un_service; SELECT count(*) FROM invoices'),
	'2', 'an application role reads as before');
($ret, $out, $err) = $node->psql('shop', q{SELECT lockbox_unprotect('invoices')});
like($err, qr/ERROR:  lockbox must be loaded via shared_preload_libraries/,
	'and lockbox_unprotect fails');
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "'lockbox'");
$node->restart;

# --- in order ----------------------------------------------------------------
($ret, $out, $err) = $node->psql('shop', 'DROP EXTENSION lockbox CASCADE');
like(
	$err,
	qr/ERROR:  cannot drop extension lockbox while tables are protected\nDETAIL:  Protected tables: public\.invoices, public\.orders\./,
	'DROP EXTENSION is refused while tables are protected, naming them');

$node->safe_psql('shop', 'SELECT lockbox_unprotect(relation) FROM lockbox.protected_tables');
is($node->safe_psql('shop', $state_sql), $before,
	'lockbox_unprotect puts both tables back as they were');
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM lockbox.audit_log WHERE event = 'unprotect'}),
	'2', 'each audited');

$node->safe_psql('shop', 'DROP EXTENSION lockbox');
is($node->safe_psql('shop', q{SELECT count(*) FROM pg_namespace WHERE nspname = 'lockbox'}),
	'0', 'DROP EXTENSION drops schema lockbox, its history with it');
ok( $node->poll_query_until(
		'postgres', q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'lockbox worker' AND datname = 'shop'}, '0'),
	'the database\'s worker exits');

my $roles = 'lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor, lockbox_forwarder';
($ret, $out, $err) = $node->psql('postgres', "DROP ROLE $roles");
like($err, qr/cannot be dropped because some objects depend on it\nDETAIL:  (?s:.*)\d+ objects in database crm/,
	'the group roles cannot be dropped while another database has lockbox');
$node->safe_psql('crm', 'DROP EXTENSION lockbox');
($ret, $out, $err) = $node->psql('postgres', "DROP ROLE $roles");
like($err, qr/DETAIL:  1 object in database shop/,
	'nor while a database holds privileges granted to them');
$node->safe_psql('shop', "DROP OWNED BY $roles");
$node->safe_psql('postgres', "DROP ROLE $roles");
is($node->safe_psql('postgres', q{SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname LIKE 'lockbox%'}),
	'', 'then DROP OWNED BY in that database and DROP ROLE drop them');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_roles WHERE rolname = 'un_eng'}),
	'1', 'the people\'s roles stay');

$node->stop;
done_testing();
