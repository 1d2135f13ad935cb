# Lockbox and replication, as the README's section "Replication" tells.
#
# Physical: on a hot standby, lifecycle functions fail with lockbox's 25006,
# an engineer without access is refused as on the primary, and an engineer
# whose approved request the standby has replayed reads the tenant's rows
# there (forwarding to the primary is not set up here: the record waits in
# the standby's spool, see test/t/032_standby_access.pl); application roles
# read as usual.
#
# Logical: a FOR ALL TABLES publication lists lockbox's own tables, one FOR
# TABLES IN SCHEMA public does not; a subscription to FOR ALL TABLES fails in
# a database without lockbox; a subscriber's copy of a protected table is an
# ordinary table (an engineer reads every tenant's rows) unless it is
# protected there, where the engineer is refused and the apply goes on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('repl_primary');
$primary->init(allows_streaming => 'logical');
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$primary->start;

$primary->safe_psql('postgres', 'CREATE DATABASE shop');
$primary->safe_psql(
	'shop', q{
CREATE EXTENSION lockbox;
CREATE ROLE rp_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE rp_rev LOGIN IN ROLE lockbox_reviewer;
CREATE ROLE rp_app LOGIN IN ROLE lockbox_approver;
CREATE ROLE rp_service LOGIN;
CREATE TABLE invoices (id int PRIMARY KEY, tenant text NOT NULL, total numeric);
INSERT INTO invoices VALUES (1, 'acme', 10), (2, 'acme', 11), (3, 'globex', 20);
GRANT SELECT ON invoices TO rp_service;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'rp_app');
SELECT lockbox_protect('invoices', tenant_column => 'tenant');
});

sub as_role
{
	my ($node, $db, $role, $sql) = @_;
	return $node->psql($db, "SET SESSION AUTHORIZATION $role; $sql");
}

# --- a hot standby ---------------------------------------------------------
$primary->backup('repl_backup');
my $standby = PostgreSQL::Test::Cluster->new('repl_standby');
$standby->init_from_backup($primary, 'repl_backup', has_streaming => 1);
$standby->start;

my ($ret, $out, $err) = as_role($standby, 'shop', 'rp_eng', 'SELECT * FROM invoices');
like($err, qr/ERROR:  no approved lockbox access to table "public\.invoices"/,
	'standby: an engineer without access is refused as on the primary');
($ret, $out, $err) = as_role($standby, 'shop', 'rp_eng',
	q{SELECT lockbox_request('acme', 'read on the standby please')});
like($err, qr/ERROR:  lockbox cannot change requests, tenants or protected tables during recovery/,
	'standby: lockbox_request fails, lockbox says why');

my $id = $primary->safe_psql('shop',
	q{SET SESSION AUTHORIZATION rp_eng; SELECT lockbox_request('acme', 'read on the standby please', duration => '1 hour')});
$primary->safe_psql('shop', "SET SESSION AUTHORIZATION rp_rev; SELECT lockbox_approve($id)");
$primary->wait_for_catchup($standby);
($ret, $out, $err) = as_role($standby, 'shop', 'rp_app', "SELECT lockbox_approve($id)");
like($err, qr/ERROR:  lockbox cannot change .* during recovery/, 'standby: lockbox_approve fails');
is($primary->safe_psql('shop', "SET SESSION AUTHORIZATION rp_app; SELECT lockbox_approve($id)"),
	'approved', 'approved on the primary');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('shop', "SELECT state FROM lockbox.requests WHERE id = $id"),
	'approved', 'the standby has replayed the approval');
is($standby->safe_psql('shop', 'SET SESSION AUTHORIZATION rp_eng; SELECT count(*) FROM invoices'),
	'2', 'standby: the approved engineer reads acme\'s rows');
is($standby->safe_psql('shop', 'SELECT pending_bytes > 0 FROM lockbox.standby_backlog'),
	't', 'standby: the record waits to be forwarded');
is($primary->safe_psql('shop', 'SET SESSION AUTHORIZATION rp_eng; SELECT count(*) FROM invoices'),
	'2', 'on the primary the engineer reads acme\'s rows');
is($standby->safe_psql('shop', 'SET SESSION AUTHORIZATION rp_service; SELECT count(*) FROM invoices'),
	'3', 'standby: an application role reads every row, as on the primary');
$standby->stop;

# --- publications ------------------------------------------------------------
$primary->safe_psql(
	'shop', q{
CREATE PUBLICATION pub_all FOR ALL TABLES;
CREATE PUBLICATION pub_public FOR TABLES IN SCHEMA public;
CREATE PUBLICATION pub_invoices FOR TABLE invoices;
});
my $all = $primary->safe_psql('shop',
	q{SELECT string_agg(schemaname || '.' || tablename, ' ' ORDER BY 1) FROM pg_publication_tables WHERE pubname = 'pub_all'});
# (the audit's rows are published as those of its partitions, 1.3)
for my $t (qw(lockbox.request lockbox.decision lockbox.audit_log_default lockbox.notification
	lockbox.notify_outbox lockbox.tenant lockbox.approver lockbox.protected_table public.invoices))
{
	like(" $all ", qr/ $t /, "FOR ALL TABLES publishes $t");
}
is( $primary->safe_psql(
		'shop',
		q{SELECT string_agg(schemaname || '.' || tablename, ' ') FROM pg_publication_tables WHERE pubname = 'pub_public'}),
	'public.invoices',
	'FOR TABLES IN SCHEMA public publishes the application\'s table alone');
# the FOR ALL TABLES publication is not left in place (see the README)
$primary->safe_psql('shop', 'DROP PUBLICATION pub_all');
$primary->safe_psql('shop', 'CREATE PUBLICATION pub_all_check FOR ALL TABLES');
# lockbox's queues have primary keys: the worker's deletes from them go on
# while such a publication exists (the notification of a new request is
# relayed, the outbox emptied)
$primary->safe_psql('shop',
	q{SET SESSION AUTHORIZATION rp_eng; SELECT lockbox_request('acme', 'while published for all', duration => '1 hour')});
ok($primary->poll_query_until('shop', 'SELECT count(*) FROM lockbox.notify_outbox', '0'),
	'with a FOR ALL TABLES publication the worker still relays and deletes its queue');
like($primary->safe_psql('shop',
		q{SELECT detail FROM lockbox.posture WHERE check_name = 'publication_lockbox_tables'}),
	qr/Publication pub_all_check \(FOR ALL TABLES\) publishes lockbox's own tables/,
	'lockbox.posture names the publication');
is($primary->safe_psql('shop', 'SELECT count(*) FROM lockbox.stats WHERE worker_failures > 0'),
	'0', 'no failed worker pass');

# --- a subscriber ------------------------------------------------------------
my $sub = PostgreSQL::Test::Cluster->new('repl_sub');
$sub->init;
$sub->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$sub->start;
my $pubconn = 'host=' . $primary->host . ' port=' . $primary->port . ' dbname=shop';
my $table = 'CREATE TABLE invoices (id int PRIMARY KEY, tenant text NOT NULL, total numeric)';
$sub->safe_psql('postgres', "CREATE DATABASE $_") for qw(plain guarded noext);

($ret, $out, $err) = $sub->psql('noext',
	"$table; CREATE SUBSCRIPTION s_noext CONNECTION '$pubconn' PUBLICATION pub_all_check");
like($err, qr/ERROR:  schema "lockbox" does not exist/,
	'a subscription to FOR ALL TABLES fails in a database without lockbox');
$primary->safe_psql('shop', 'DROP PUBLICATION pub_all_check');

$sub->safe_psql('guarded', qq{
CREATE EXTENSION lockbox;
CREATE ROLE rp_eng LOGIN IN ROLE lockbox_engineer;
$table;
SELECT lockbox_protect('invoices', tenant_column => 'tenant');
CREATE SUBSCRIPTION s_guarded CONNECTION '$pubconn' PUBLICATION pub_invoices;
});
$sub->safe_psql('plain', qq{
$table;
GRANT SELECT ON invoices TO lockbox_engineer;
CREATE SUBSCRIPTION s_plain CONNECTION '$pubconn' PUBLICATION pub_invoices;
});
$sub->wait_for_subscription_sync($primary, 's_guarded', 'guarded');
$sub->wait_for_subscription_sync($primary, 's_plain', 'plain');

is($sub->safe_psql('plain', 'SET SESSION AUTHORIZATION rp_eng; SELECT string_agg(DISTINCT tenant, \',\' ORDER BY tenant) FROM invoices'),
	'acme,globex', 'an unprotected subscriber table gives an engineer every tenant\'s rows');
($ret, $out, $err) = as_role($sub, 'guarded', 'rp_eng', 'SELECT * FROM invoices');
like($err, qr/ERROR:  no approved lockbox access to table "public\.invoices"/,
	'protected on the subscriber, the engineer is refused there');
$primary->safe_psql('shop', q{INSERT INTO invoices VALUES (4, 'globex', 30)});
$primary->wait_for_catchup('s_guarded');
is($sub->safe_psql('guarded', 'SELECT count(*) FROM invoices'), '4',
	'and the subscription keeps applying to the protected table');

$sub->stop;
$primary->stop;
done_testing();
