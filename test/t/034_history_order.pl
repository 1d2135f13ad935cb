# The newest rows, read in order: "lockbox.requests ORDER BY id DESC LIMIT
# 10" and "lockbox.access_log ORDER BY at DESC LIMIT 20" read about the rows
# they return, not a tenant's history, for every kind of caller (README
# "History and retention").
#
# Over a vacuumed history of 100 tenants (200,000 requests, 2,000 a tenant,
# and 300,000 access rows) each question is asked with EXPLAIN ANALYZE as an
# approver of one tenant, of six (more than the four tenants an approver's
# branches read one by one; one of them new, without any row), of six new
# tenants (none has a row), of all 100, an engineer, a reviewer and an
# auditor: no plan node may read more than 1,000
# rows (returned or filtered out; the old plans sorted a tenant's 2,000 or
# 3,000), none sorts more than the approver's own rows, and the rows are
# those the tables say the caller may see.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;

my $node = PostgreSQL::Test::Cluster->new('history_order');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'\n");
$node->start;

my $db = 'ho';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE ho_eng IN ROLE lockbox_engineer;
CREATE ROLE ho_eng2 IN ROLE lockbox_engineer;
CREATE ROLE ho_rev IN ROLE lockbox_reviewer;
CREATE ROLE ho_aud IN ROLE lockbox_auditor;
CREATE ROLE ho_app1 IN ROLE lockbox_approver;
CREATE ROLE ho_app6 IN ROLE lockbox_approver;
CREATE ROLE ho_app IN ROLE lockbox_approver;
CREATE ROLE ho_app_new IN ROLE lockbox_approver;
SELECT count(lockbox_add_tenant('ho_t' || i)) FROM generate_series(0, 100) AS i;
SELECT count(lockbox_add_tenant('ho_new' || i)) FROM generate_series(1, 6) AS i;
SELECT count(lockbox_add_approver('ho_new' || i, 'ho_app_new')) FROM generate_series(1, 6) AS i;
SELECT lockbox_add_approver('ho_t1', 'ho_app1');
SELECT count(lockbox_add_approver('ho_t' || i, 'ho_app6')) FROM generate_series(0, 5) AS i;
SELECT count(lockbox_add_approver('ho_t' || i, 'ho_app')) FROM generate_series(1, 100) AS i;
CREATE TABLE ho_data (tenant text NOT NULL, v int);
SELECT lockbox_protect('ho_data', 'tenant');
INSERT INTO lockbox.request (tenant, requester, reason, tables, access, duration,
		state, created_at, closed_at, close_reason)
SELECT 'ho_t' || (1 + i % 100),
	   CASE WHEN i % 1000 = 0 THEN 'ho_eng2' ELSE 'ho_eng' END::regrole,
	   'history', ARRAY['ho_data'::regclass], 'read', interval '1 hour',
	   CASE WHEN i % 3 = 0 THEN 'denied' ELSE 'closed' END,
	   now() - (200000 - i) * interval '30 seconds' - interval '1 day',
	   now() - (200000 - i) * interval '30 seconds', 'resolved'
  FROM generate_series(1, 200000) AS i;
INSERT INTO lockbox.request (tenant, requester, reason, tables, access, duration,
		state, created_at, deadline)
SELECT 'ho_t' || (1 + i % 100), 'ho_eng'::regrole, 'pending', ARRAY['ho_data'::regclass],
	   'read', interval '1 hour', 'pending_approval', now(), now() + interval '10 hours'
  FROM generate_series(1, 30) AS i;
INSERT INTO lockbox.audit_log (seq, at, session_user_name, actor, event,
		request_id, tenant, detail, parents, hash)
SELECT nextval('lockbox.audit_seq'), now() - (300000 - i) * interval '2 seconds',
	   NULL, CASE WHEN i % 1000 = 0 THEN 'ho_eng2' ELSE 'ho_eng' END, 'access',
	   1 + i / 2, 'ho_t' || (1 + i % 100),
	   '{"relation": "public.ho_data", "command": "SELECT", "query": "SELECT 1"}',
	   '{}', sha256(i::text::bytea)
  FROM generate_series(1, 300000) AS i;
-- the months' partitions, as the worker makes them
SELECT lockbox.audit_partitions(now() - interval '1 month', now()) >= 0 AS partitioned;
});
$node->safe_psql($db, 'VACUUM ANALYZE');

# the rows the tables say a role sees, newest first: request ids, audit seqs
my %tenants = (
	ho_app1 => "ARRAY['ho_t1']",
	ho_app6 => "ARRAY(SELECT 'ho_t' || i FROM generate_series(0, 5) AS i)",
	ho_app => "ARRAY(SELECT 'ho_t' || i FROM generate_series(1, 100) AS i)",
	ho_app_new => "ARRAY(SELECT 'ho_new' || i FROM generate_series(1, 6) AS i)",
	ho_eng2 => "'{}'::text[]",
	ho_rev => "NULL",
	ho_aud => "NULL");

# every node of a plan (JSON), depth first
sub nodes
{
	my ($plan) = @_;
	return ($plan, map { nodes($_) } @{ $plan->{Plans} || [] });
}

foreach my $role (sort keys %tenants)
{
	my $t = $tenants{$role};
	my $everyone = $t eq 'NULL' ? 'true' : 'false';
	foreach my $q (
		[
			'requests',
			'SELECT id FROM lockbox.requests ORDER BY id DESC LIMIT 10',
			"SELECT string_agg(id::text, ',' ORDER BY id DESC) FROM (SELECT id FROM lockbox.request
			  WHERE $everyone OR requester::text = '$role' OR tenant = ANY ($t)
			  ORDER BY id DESC LIMIT 10) AS r"
		],
		[
			'access_log',
			'SELECT seq FROM lockbox.access_log ORDER BY at DESC LIMIT 20',
			"SELECT string_agg(seq::text, ',' ORDER BY at DESC) FROM (SELECT seq, at FROM lockbox.audit_log
			  WHERE event IN ('access', 'refused')
				AND ($everyone OR actor = '$role' OR tenant = ANY ($t))
			  ORDER BY at DESC LIMIT 20) AS a"
		])
	{
		my ($view, $question, $expected) = @$q;
		my $want = $node->safe_psql($db, $expected);
		my $got = $node->safe_psql($db,
			"SET ROLE $role; SELECT string_agg(x::text, ',') FROM ($question) AS q (x)");
		is($got, $want, "$view, newest first: $role sees its rows");

		my $json = $node->safe_psql($db,
			"SET ROLE $role; EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) $question");
		my $plan = decode_json($json)->[0]{Plan};
		my ($most, $where) = (0, '');
		foreach my $n (nodes($plan))
		{
			my $read = $n->{'Actual Rows'} + ($n->{'Rows Removed by Filter'} || 0);
			$read *= $n->{'Actual Loops'} || 1;
			($most, $where) = ($read, $n->{'Node Type'} . ' ' . ($n->{'Index Name'} || $n->{'Relation Name'} || ''))
			  if $read > $most;
		}
		cmp_ok($most, '<=', 1000, "$view, newest first: $role reads at most 1000 rows in a node")
		  or diag("$most rows in $where");
		# (a sort of the newest rows by id or time; not the one that ranks
		# an approver's tenants)
		my @sorts = grep {
			$_->{'Node Type'} eq 'Sort' && $_->{'Actual Rows'} > 0
			  && join(', ', @{ $_->{'Sort Key'} }) =~ /\b(id|at) DESC/
			  || $_->{'Node Type'} eq 'Bitmap Heap Scan'
		} nodes($plan);
		is(scalar(@sorts), 0, "$view, newest first: $role sorts none of its rows")
		  or diag(explain $node->safe_psql($db,
			"SET ROLE $role; EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF) $question"));
	}
}

$node->stop;
done_testing();
