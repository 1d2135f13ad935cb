# A primary whose node name changes at a restart (cluster_name or
# lockbox.node_name set or changed, as a DBA does when adding standbys;
# README "Replicas"): the spool's progress is kept by node name, and a spool
# file part of which was audited before the restart is audited from where it
# stopped, under the new name: no record twice.  (The test framework starts
# every server with cluster_name set to its node's name: "rename" here.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('rename');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->start;

my $db = 'shop';
$node->safe_psql('postgres', "CREATE DATABASE $db");
sub sql { return $node->safe_psql($db, $_[0]); }
sql(q{
CREATE EXTENSION lockbox;
CREATE ROLE nr_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE nr_rev LOGIN IN ROLE lockbox_reviewer;
CREATE ROLE nr_app LOGIN IN ROLE lockbox_approver;
CREATE TABLE t (tenant text, v int);
INSERT INTO t VALUES ('acme', 1);
GRANT SELECT ON t TO lockbox_engineer;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'nr_app');
SELECT lockbox_protect('t', tenant_column => 'tenant');
SET SESSION AUTHORIZATION nr_eng;
SELECT lockbox_request('acme', 'Investigating ticket 42');
SET SESSION AUTHORIZATION nr_rev;
SELECT lockbox_approve(1);
SET SESSION AUTHORIZATION nr_app;
SELECT lockbox_approve(1);
});

# one session, one spool file: its first statement audited, its second not
# yet (the worker's audit inserts held back) when the server restarts
my $s = $node->background_psql($db, extra_params => [ '-U', 'nr_eng' ]);
$s->query_safe('SELECT /* before */ count(*) FROM t');
ok( $node->poll_query_until(
		$db, q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%/* before */%'}, '1'),
	'the first statement is audited');
is(sql(q{SELECT string_agg(node, ',') FROM lockbox.access_spool}), 'rename',
	'the file\'s progress is kept under the node name, "rename"');
sql(q{ALTER TABLE lockbox.audit_log ADD CONSTRAINT hold_access
	  CHECK (event NOT IN ('access', 'refused')) NOT VALID});
$s->query_safe('SELECT /* after */ count(*) FROM t');
$s->quit;

$node->stop;
$node->append_conf('postgresql.conf', "lockbox.node_name = 'main'");
$node->start;
sql('ALTER TABLE lockbox.audit_log DROP CONSTRAINT hold_access');
ok( $node->poll_query_until(
		$db, q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%/* after */%'}, '1'),
	'after the restart under the name "main", the second statement is audited');
is(sql(q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%/* before */%'}), '1',
	'and the first is not audited again');
ok($node->poll_query_until($db, 'SELECT access_queue_depth FROM lockbox.stats', '0'),
	'the file is finished');
is(sql(q{SELECT count(*) FROM lockbox.access_spool}), '0', 'no progress is left behind');
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies');

$node->stop;
done_testing();
