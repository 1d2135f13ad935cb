# Refusals of an engineer's statement on protected data that come after
# lockbox let it start are recorded as refused (1.7), with the error's
# message as the reason, beside the allowed row made before it started:
#
# - core's privilege checks as the statement starts: a table, a column, a
#   function the engineer may not use; COPY ... TO, which core checks before
#   its query starts; EXPLAIN
# - a refusal as it finishes: an AFTER trigger's statement on a table the
#   engineer may not write
# - the plan it would send to the client (auto_explain prints as the
#   statement ends, client_min_messages set as it ran)
# - a refusal lockbox made and recorded itself in a statement nested in
#   another is recorded once, not again for the statement around it
# - an application's own error with SQLSTATE 42501 (a trigger's RAISE) is
#   not repeated in the access log
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('refusals');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
});
$node->start;

my $db = 'app';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE rf_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE rf_rev IN ROLE lockbox_reviewer;
CREATE ROLE rf_app IN ROLE lockbox_approver;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_tenant('globex');
SELECT lockbox_add_approver('acme', 'rf_app');
CREATE TABLE inv (id int PRIMARY KEY, tenant text NOT NULL, v int NOT NULL, secret text);
INSERT INTO inv SELECT g, CASE WHEN g % 2 = 0 THEN 'acme' ELSE 'globex' END, 0, 's'
  FROM generate_series(1, 10) g;
SELECT lockbox_protect('inv', tenant_column => 'tenant');
CREATE TABLE other (id int, tenant text NOT NULL);
SELECT lockbox_protect('other', tenant_column => 'tenant');
-- what the engineer may not use
REVOKE DELETE ON inv FROM lockbox_engineer;
REVOKE SELECT ON inv FROM lockbox_engineer;
GRANT SELECT (id, tenant, v) ON inv TO lockbox_engineer;
CREATE FUNCTION hidden(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
REVOKE EXECUTE ON FUNCTION hidden(int) FROM PUBLIC;
-- the application's trail of changes, which engineers may not write
CREATE TABLE trail (id int);
CREATE FUNCTION trail() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO trail VALUES (NEW.id); RETURN NULL; END$$;
CREATE TRIGGER trail AFTER UPDATE ON inv FOR EACH ROW EXECUTE FUNCTION trail();
-- the application's own refusal, whose message engineers may see but the
-- access log does not repeat
CREATE FUNCTION quota() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN
  IF NEW.v = 7 THEN RAISE EXCEPTION 'over quota: globex has 12' USING ERRCODE = '42501'; END IF;
  RETURN NEW; END$$;
CREATE TRIGGER quota BEFORE UPDATE ON inv FOR EACH ROW EXECUTE FUNCTION quota();
-- reads table other, which no request covers
CREATE FUNCTION peek() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM other';
});

sub sql { return $node->safe_psql($db, $_[0]); }

my $id = sql(q{SET SESSION AUTHORIZATION rf_eng;
	SELECT lockbox_request('acme', 'Invoices of acme look wrong',
		tables => '{inv}', access => 'write', duration => '4 hours')});
sql("SET SESSION AUTHORIZATION rf_rev; SELECT lockbox_approve($id)");
sql("SET SESSION AUTHORIZATION rf_app; SELECT lockbox_approve($id)");

# the engineer's statements, in a session of their own: stderr
sub as_eng
{
	my ($q) = @_;
	my ($ret, $out, $err) = $node->psql($db, $q,
		extra_params => [ '-U', 'rf_eng', '-v', 'ON_ERROR_STOP=0' ]);
	return $err;
}

# wait until the access log holds $want rows matching $cond
sub wait_rows
{
	my ($cond, $want) = @_;
	my $got;
	for (1 .. 300)
	{
		$got = sql("SELECT count(*) FROM lockbox.access_log WHERE $cond");
		return $got if $got == $want;
		usleep(100_000);
	}
	return $got;
}

my $err;

# each statement: (tag, statement, the error core raises)
my @refused = (
	[ 'table', q{DELETE FROM inv /* table */ WHERE id = 2},
		'permission denied for table inv' ],
	[ 'column', q{SELECT secret FROM inv /* column */},
		'permission denied for table inv' ],
	[ 'function', q{SELECT hidden(id) FROM inv /* function */},
		'permission denied for function hidden' ],
	[ 'copy', q{COPY inv /* copy */ TO STDOUT},
		'permission denied for table inv' ],
	[ 'explain', q{EXPLAIN (COSTS OFF) DELETE FROM inv /* explain */},
		'permission denied for table inv' ],
	[ 'trigger', q{UPDATE inv SET v = 1 /* trigger */ WHERE id = 2},
		'permission denied for table trail' ],
	[ 'plan', q{SELECT set_config('client_min_messages', 'log', false), count(*) /* plan */
		FROM inv GROUP BY 1},
		'client_min_messages at log or below is not allowed in a statement of an engineer on lockbox-protected table "public.inv"' ]);
for my $r (@refused)
{
	my ($tag, $q, $msg) = @$r;
	$err = as_eng($q);
	like($err, qr/\Q$msg\E/, "$tag: refused");
	is(wait_rows("query LIKE '%/* $tag */%' AND outcome = 'refused'", 1), 1,
		"$tag: recorded as refused");
	is( sql(qq{SELECT request_id || ' ' || relation || ' ' || reason
		FROM lockbox.access_log WHERE query LIKE '%/* $tag */%' AND outcome = 'refused'}),
		"$id public.inv $msg",
		"$tag: under the request, naming the table, with core's message as the reason");
	is( sql(qq{SELECT count(*) FROM lockbox.access_log
		WHERE query LIKE '%/* $tag */%' AND outcome = 'allowed'}),
		'1', "$tag: beside the row that let it start");
}
is(sql(q{SELECT count(*) FROM trail}), '0', 'the trigger\'s refused write did not happen');
is(sql(q{SELECT v FROM inv WHERE id = 2}), '0', 'nor the update');

# the application's own message with SQLSTATE 42501 is no refusal to repeat
$err = as_eng(q{UPDATE inv SET v = 7 /* raise */ WHERE id = 2});
like($err, qr/over quota/, 'the application\'s trigger refuses');
is(wait_rows("query LIKE '%/* raise */%'", 1), 1, 'the statement is recorded');
is(sql(q{SELECT outcome FROM lockbox.access_log WHERE query LIKE '%/* raise */%'}),
	'allowed', 'as allowed only: the message is the application\'s');

# a refusal lockbox recorded itself, in a statement nested in another
$err = as_eng(q{SELECT peek() FROM inv /* nested */ WHERE id = 2});
like($err, qr/no approved lockbox access to table "public.other"/,
	'a nested statement lockbox refuses');
is(wait_rows(q{query LIKE '%count(*) FROM other%' AND outcome = 'refused'}, 1), 1,
	'is recorded as refused');
usleep(500_000);
is( sql(q{SELECT count(*) FROM lockbox.access_log
	WHERE within_query LIKE '%/* nested */%' OR query LIKE '%/* nested */%'}),
	'2', 'once: with the statement around it, allowed');

done_testing();
