# Retention of the audit log (README "History and retention", "Retention").
#
# The server runs on a fake clock (libfaketime, as test/cluster.sh --at), set
# to the 10th of four months in turn, restarted in between: each month's
# transitions write their audit rows through the real path, into the month's
# partition the worker created ahead.  Then lockbox_archive_audit() archives
# the first two months: what remains verifies, each archive verifies (the
# second one's links into the first checked against the anchors it carries),
# tampering with a remaining row, a kept anchor, an archived row, or removing
# an archive's last row is detected, an archive dumped and restored into
# another database verifies there, and a whole dump restores into a working,
# verifiable audit.  Non-superusers can neither archive nor truncate, detach
# or drop a partition; nobody can truncate one, nor (superuser or the tables'
# owner) run any other statement that would remove, rewrite or hide audit
# rows, make them crash-unsafe or stop their triggers.  An archive forged
# consistently with its own comment is caught by the audit_archived row the
# live log keeps.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use Config;

my $multiarch = `cc -print-multiarch 2>/dev/null`;
chomp $multiarch;
my $libfaketime = $ENV{LIBFAKETIME} // "/usr/lib/$multiarch/faketime/libfaketime.so.1";
plan skip_all => "libfaketime is not installed ($libfaketime)" unless -r $libfaketime;

my $shim = "${PostgreSQL::Test::Utils::tmp_check}/faketime_waits.so";
system('cc', '-O2', '-shared', '-fPIC', '-o', $shim, 'test/faketime_waits.c', '-ldl') == 0
  or die "could not build $shim";

my $node = PostgreSQL::Test::Cluster->new('retention');
LockboxTest::setup($node, 'ret');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'\ntimezone = 'UTC'");

# (re)start the server with its clock at $at (UTC)
sub start_at
{
	my ($at) = @_;
	my $target = `date -u -d '$at' +%s`;
	chomp $target;
	local $ENV{LD_PRELOAD} = "$shim $libfaketime";
	local $ENV{FAKETIME} = sprintf('%+ds', $target - time());
	local $ENV{FAKETIME_DONT_FAKE_MONOTONIC} = '1';
	local $ENV{NO_FAKE_STAT} = '1';
	$node->stop if $node->{_pid};
	$node->start;
	like($node->safe_psql('postgres', q{SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')}),
		qr/^\Q${\ substr($at, 0, 10)}\E$/, "the server's clock reads $at");
}

# the SQLSTATE of a statement that must fail, as $role (undef: superuser)
sub sqlstate
{
	my ($role, $q) = @_;
	my $pre = defined $role ? "SET SESSION AUTHORIZATION $role;" : '';
	my ($rc, $out, $err) = $node->psql('ret',
		"\\set VERBOSITY verbose\n$pre $q", on_error_stop => 1);
	return $rc == 0 ? 'ok' : ($err =~ /ERROR:  ([0-9A-Z]{5}):/ ? $1 : $err);
}

sub partition_exists
{
	my ($month) = @_;
	return "SELECT count(*) = 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			 WHERE i.inhparent = 'lockbox.audit_log'::regclass AND c.relname = 'audit_log_$month'";
}

# one month of history: requests through their lifecycle
my $n = 0;
sub month_of_work
{
	for (1 .. 3)
	{
		$n++;
		my $id = as_role('ret_eng', "SELECT lockbox_request('acme', 'support case $n for acme', duration => '1 hour')");
		as_role('ret_rev', "SELECT lockbox_approve($id)");
		as_role('ret_app', "SELECT lockbox_approve($id)");
		as_role('ret_eng', "SELECT count(*) FROM acme_data");
		# (a statement within a DO block: its client statement is a part)
		as_role('ret_eng', 'DO $d$ BEGIN PERFORM count(*) FROM acme_data; END $d$');
		as_role('ret_eng', "SELECT lockbox_close($id, 'resolved')");
	}
	# the engineers' statements are audited a moment later (the worker
	# gathers for 200 ms): the month's rows are all in once none waits
	$node->poll_query_until('ret', 'SELECT access_queue_depth = 0 FROM lockbox.stats')
	  or die 'the worker did not audit the month\'s statements';
}

start_at('2026-01-10 12:00:00');
$node->safe_psql('postgres', 'CREATE DATABASE ret');
sql(q{
CREATE EXTENSION lockbox;
CREATE ROLE ret_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE ret_rev LOGIN IN ROLE lockbox_reviewer;
CREATE ROLE ret_app LOGIN IN ROLE lockbox_approver;
CREATE ROLE ret_aud LOGIN IN ROLE lockbox_auditor;
CREATE ROLE ret_dba LOGIN CREATEROLE CREATEDB;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'ret_app');
CREATE TABLE acme_data (tenant text, v int);
INSERT INTO acme_data VALUES ('acme', 1);
SELECT lockbox_protect('acme_data', tenant_column => 'tenant');
});
$node->poll_query_until('ret', partition_exists('2026_03'))
  or die 'the worker created no partitions';
ok(1, 'the worker created the partitions of this month and the next two');
month_of_work();

for my $m ('2026-02-10', '2026-03-10', '2026-04-10')
{
	start_at("$m 12:00:00");
	my $ahead = `date -u -d '$m +2 months' +%Y_%m`;
	chomp $ahead;
	$node->poll_query_until('ret', partition_exists($ahead))
	  or die "no partition $ahead";
	month_of_work();
}

my %rows = map { $_ => sql("SELECT count(*) FROM lockbox.audit_log_$_") } qw(2026_01 2026_02 2026_03 2026_04);
ok($rows{$_} >= 15, "month $_ has its rows in its partition ($rows{$_})") for sort keys %rows;
is(sql('SELECT count(*) FROM ONLY lockbox.audit_log_default'), '0', 'the default partition is empty');
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the whole log verifies');
my $total = sql('SELECT count(*) FROM lockbox.audit_log');

# --- who may archive; what nobody may do to a partition ----------------------
for my $role ('ret_dba', 'ret_aud', 'ret_eng')
{
	is(sqlstate($role, "SELECT * FROM lockbox_archive_audit('2026-03-01')"), '42501',
		"$role may not archive");
}
is(sqlstate('ret_dba', 'TRUNCATE lockbox.audit_log_2026_01'), '42501', 'a non-superuser cannot truncate a partition');
is(sqlstate('ret_dba', 'DROP TABLE lockbox.audit_log_2026_01'), '42501', '... nor drop one');
is(sqlstate('ret_dba', 'ALTER TABLE lockbox.audit_log DETACH PARTITION lockbox.audit_log_2026_01'), '42501',
	'... nor detach one');
is(sqlstate(undef, 'TRUNCATE lockbox.audit_log_2026_01'), '42501', 'a superuser cannot truncate a partition');
is(sqlstate(undef, 'DROP TABLE lockbox.audit_log_2026_01'), '42501', '... nor drop one');
is(sqlstate(undef, 'ALTER TABLE lockbox.audit_log DETACH PARTITION lockbox.audit_log_2026_01'), '42501',
	'... nor detach one');
is(sqlstate(undef, 'DELETE FROM lockbox.audit_log_2026_01'), '42501', '... nor delete from one');
is(sqlstate(undef, "SET session_replication_role = replica; UPDATE lockbox.audit_log_2026_01 SET event = 'x'"),
	'42501', '... nor update one as a replica');
is(sql('SELECT count(*) FROM lockbox.audit_log'), $total, 'nothing changed');

# Every statement that would take audit rows out, rewrite them, make them
# crash-unsafe or let them escape the append-only triggers: refused (42501),
# for a superuser and for the owner of every audit table.  Each runs in a
# transaction rolled back, so that none outlives its own check.
my $p = 'lockbox.audit_log_2026_01';
my @refused = (
	"ALTER TABLE $p SET UNLOGGED",
	'ALTER TABLE lockbox.audit_log_default SET UNLOGGED',
	'ALTER TABLE lockbox.audit_anchor SET UNLOGGED',
	"ALTER TABLE $p DISABLE TRIGGER ALL",
	"ALTER TABLE $p DISABLE TRIGGER USER",
	"ALTER TABLE $p DISABLE TRIGGER audit_log_no_truncate",
	"ALTER TABLE $p DISABLE TRIGGER audit_log_append_only",
	'ALTER TABLE lockbox.audit_log DISABLE TRIGGER audit_log_append_only',
	'ALTER TABLE lockbox.audit_log DISABLE TRIGGER ALL',
	'ALTER TABLE lockbox.audit_anchor DISABLE TRIGGER audit_anchor_append_only',
	'ALTER TABLE lockbox.audit_statement DISABLE TRIGGER USER',
	"ALTER TABLE $p ENABLE REPLICA TRIGGER audit_log_no_truncate",
	'ALTER TABLE lockbox.audit_log ENABLE TRIGGER audit_log_append_only',
	"ALTER TABLE $p ENABLE TRIGGER ALL",
	"DROP TRIGGER audit_log_no_truncate ON $p",
	'DROP TRIGGER audit_log_append_only ON lockbox.audit_log',
	'CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON lockbox.audit_log'
	  . ' FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()',
	'TRUNCATE lockbox.audit_log',
	'TRUNCATE ONLY lockbox.audit_log',
	"TRUNCATE ONLY $p",
	'TRUNCATE lockbox.audit_log_default',
	'TRUNCATE lockbox.audit_anchor, lockbox.audit_statement',
	'DROP TABLE lockbox.audit_log CASCADE',
	'DROP TABLE lockbox.audit_log_default',
	"DROP TABLE $p CASCADE",
	"ALTER TABLE lockbox.audit_log DETACH PARTITION $p CONCURRENTLY",
	"ALTER TABLE $p NO INHERIT lockbox.audit_log",
	"ALTER TABLE $p RENAME TO audit_log_2030_01",
	'ALTER TABLE lockbox.audit_log RENAME TO audit_log_old',
	'ALTER TABLE lockbox.audit_log RENAME COLUMN hash TO old_hash',
	'ALTER TABLE lockbox.audit_log ALTER COLUMN actor TYPE varchar(200)',
	"ALTER TABLE lockbox.audit_log ALTER COLUMN reason TYPE text USING ''",
	'ALTER TABLE lockbox.audit_log DROP COLUMN reason',
	"ALTER TABLE $p SET ACCESS METHOD heap",
	"CREATE RULE keep_rows AS ON DELETE TO $p DO INSTEAD NOTHING",
	'ALTER TABLE lockbox.audit_log ENABLE ROW LEVEL SECURITY',
	"CREATE TRIGGER eat BEFORE INSERT ON $p FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
	'CREATE TRIGGER eat BEFORE INSERT OR UPDATE ON lockbox.audit_log FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()',
	'CREATE TRIGGER eat BEFORE INSERT ON lockbox.audit_statement FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()',
	q{CREATE TABLE lockbox.spare (LIKE lockbox.audit_log);
		INSERT INTO lockbox.spare SELECT * FROM lockbox.audit_log_2026_01 LIMIT 1;
		ALTER TABLE lockbox.audit_log ATTACH PARTITION lockbox.spare
		FOR VALUES FROM ('2030-01-01 00:00+00') TO ('2030-02-01 00:00+00')},
	q{CREATE TABLE public.spare (LIKE lockbox.audit_log);
		ALTER TABLE lockbox.audit_log ATTACH PARTITION public.spare
		FOR VALUES FROM ('2030-01-01 00:00+00') TO ('2030-02-01 00:00+00')},
	q{CREATE TABLE lockbox.spare (LIKE lockbox.audit_log);
		CREATE TRIGGER eat BEFORE INSERT ON lockbox.spare FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
		ALTER TABLE lockbox.audit_log ATTACH PARTITION lockbox.spare
		FOR VALUES FROM ('2030-01-01 00:00+00') TO ('2030-02-01 00:00+00')});
# (the owner set in the catalog: OWNER TO a role that is no superuser is refused)
my $to_owner = q{GRANT USAGE, CREATE ON SCHEMA lockbox, public TO ret_dba;
	UPDATE pg_class SET relowner = 'ret_dba'::regrole
	 WHERE oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'lockbox.audit_log'::regclass
				   UNION ALL VALUES ('lockbox.audit_log'::regclass), ('lockbox.audit_anchor'), ('lockbox.audit_statement'));};
for my $q (@refused)
{
	is(sqlstate(undef, "BEGIN; $q; ROLLBACK;"), '42501', "a superuser may not: $q");
	is(sqlstate(undef, "BEGIN; $to_owner SET LOCAL ROLE ret_dba; $q; ROLLBACK;"), '42501',
		"... nor the tables' owner");
}
# only a superuser may try these (PostgreSQL refuses them to anyone else)
for my $q ('ALTER EXTENSION lockbox DROP TABLE lockbox.audit_log',
	'ALTER EXTENSION lockbox DROP TABLE lockbox.audit_anchor',
	'ALTER EXTENSION lockbox DROP FUNCTION lockbox.audit_log_append_only()',
	"ALTER TABLE $p SET SCHEMA public",
	'ALTER TRIGGER audit_log_append_only ON lockbox.audit_log DEPENDS ON EXTENSION plpgsql',
	"ALTER TRIGGER audit_log_no_truncate ON $p DEPENDS ON EXTENSION plpgsql",
	'ALTER FUNCTION lockbox.audit_log_append_only() DEPENDS ON EXTENSION plpgsql',
	q{CREATE OR REPLACE FUNCTION lockbox.audit_log_append_only() RETURNS trigger
		LANGUAGE plpgsql AS 'BEGIN RETURN OLD; END'},
	q{CREATE UNLOGGED TABLE lockbox.audit_log_2030_01 PARTITION OF lockbox.audit_log
		FOR VALUES FROM ('2030-01-01 00:00+00') TO ('2030-02-01 00:00+00')},
	q{CREATE UNLOGGED TABLE public.spare (LIKE lockbox.audit_log);
		ALTER TABLE lockbox.audit_log ATTACH PARTITION public.spare
		FOR VALUES FROM ('2030-01-01 00:00+00') TO ('2030-02-01 00:00+00')},
	q{CREATE TABLE public.spare (LIKE lockbox.audit_log) PARTITION BY RANGE (at);
		ALTER TABLE lockbox.audit_log ATTACH PARTITION public.spare
		FOR VALUES FROM ('2030-01-01 00:00+00') TO ('2030-02-01 00:00+00')},
	"ALTER TABLE $p OWNER TO ret_dba",
	'ALTER TABLE lockbox.audit_anchor OWNER TO ret_dba',
	"UPDATE pg_class SET relowner = 'ret_dba'::regrole WHERE oid = '$p'::regclass; DROP OWNED BY ret_dba")
{
	is(sqlstate(undef, "BEGIN; $q; ROLLBACK;"), '42501', "a superuser may not: $q");
}
like((($node->psql('ret', "ALTER TABLE $p SET UNLOGGED"))[2]),
	qr/ERROR:  ALTER TABLE \.\.\. SET UNLOGGED is refused on audit table "lockbox\.audit_log_2026_01"/,
	'the refusal names the statement and the table');
like((($node->psql('ret', "TRUNCATE $p"))[2]),
	qr/ERROR:  TRUNCATE is refused on audit table "lockbox\.audit_log_2026_01"\n.*\nHINT:  Archive whole months with SELECT \* FROM lockbox_archive_audit\(before\)\./,
	'... and a removal points at lockbox_archive_audit');
is(sqlstate(undef, "SET session_replication_role = replica; DELETE FROM $p"), '42501',
	'the rows still refuse DELETE as a replica');
is(sql('SELECT count(*) FROM lockbox.audit_log'), $total, 'every audit row is still there');
is(sql(q{SELECT string_agg(DISTINCT t.tgenabled::text, '') FROM pg_trigger t
		  WHERE t.tgfoid = 'lockbox.audit_log_append_only'::regproc}), 'A', 'every trigger still fires always');
is(sql(q{SELECT string_agg(DISTINCT c.relpersistence::text, '') FROM pg_class c
		  WHERE c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'lockbox.audit_log'::regclass)}),
	'p', 'every partition is still logged');
is(sql(q{SELECT count(*) FROM pg_class WHERE relname = 'spare' OR relname = 'audit_log_2030_01'}), '0',
	'no partition was added');
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies');

# What lockbox's own partitions need, and pg_dump's output issues, passes.
sql(qq{BEGIN;
	ALTER TABLE $p ALTER COLUMN actor SET (n_distinct = -0.001), SET (parallel_workers = 0),
		ENABLE ALWAYS TRIGGER audit_log_no_truncate, SET LOGGED, SET TABLESPACE pg_default;
	ALTER TABLE $p OWNER TO CURRENT_USER;
	CREATE INDEX audit_spare_idx ON $p (actor);
	CLUSTER $p USING audit_log_2026_01_pkey;
	COMMENT ON TABLE $p IS 'January';
	CREATE TRIGGER siem AFTER INSERT ON lockbox.audit_log FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
	CREATE TABLE lockbox.audit_log_2030_01 (LIKE lockbox.audit_log INCLUDING DEFAULTS);
	ALTER TABLE lockbox.audit_log ATTACH PARTITION lockbox.audit_log_2030_01
		FOR VALUES FROM ('2030-01-01 00:00+00') TO ('2030-02-01 00:00+00');
	ROLLBACK});
ok(1, 'options, ENABLE ALWAYS, SET LOGGED, SET TABLESPACE, OWNER to a superuser, indexes, CLUSTER, '
	. 'an AFTER row trigger, and attaching an empty table of schema lockbox (as a restore does) pass');

# --- bad input changes nothing -----------------------------------------------
is(sqlstate(undef, 'SELECT * FROM lockbox_archive_audit(NULL)'), '22004', 'before NULL: 22004');
is(sqlstate(undef, "SELECT * FROM lockbox_archive_audit('2026-05-01')"), '22023', 'before in the future: 22023');
is(sqlstate(undef, "SELECT * FROM lockbox_archive_audit('2026-01-31')"), '22023',
	'no whole month before before: 22023');
is(sql('SELECT count(*) FROM lockbox.audit_log'), $total, 'nothing changed');

# a DBA who may create schemas takes lockbox_archive first: archiving refuses
sql('GRANT CREATE ON DATABASE ret TO ret_dba');
as_role('ret_dba', 'CREATE SCHEMA lockbox_archive');
is(sqlstate(undef, "SELECT * FROM lockbox_archive_audit('2026-03-01')"), '42501',
	'a schema lockbox_archive of another owner is refused');
is(sql('SELECT count(*) FROM lockbox.audit_log'), $total, 'nothing changed');
sql('DROP SCHEMA lockbox_archive; REVOKE CREATE ON DATABASE ret FROM ret_dba');

# --- archive January and February --------------------------------------------
my $t0 = time();
my $out = sql(q{SELECT archive, range_start, range_end, first_seq, last_seq, row_count, digest
				FROM lockbox_archive_audit('2026-03-01') ORDER BY range_start});
note sprintf('archived in %d s: %s', time() - $t0, $out);
my @arch = map { [ split /\|/ ] } split /\n/, $out;
is(scalar(@arch), 2, 'two months archived');
is($arch[0][0], 'lockbox_archive.audit_log_2026_01', 'January went to lockbox_archive.audit_log_2026_01');
is($arch[1][0], 'lockbox_archive.audit_log_2026_02', 'February to lockbox_archive.audit_log_2026_02');
is($arch[0][5], $rows{'2026_01'}, 'with all of its rows');
is($arch[1][5], $rows{'2026_02'}, 'with all of its rows');
is(sql(q{SELECT count(*) FROM lockbox.audit_log
		  WHERE event = 'audit_archived' AND detail->>'digest' IN ('} . "$arch[0][6]', '$arch[1][6]')"),
	'2', 'each archive is recorded by an audit_archived row with its digest');
is(sql(q{SELECT string_agg(detail->>'archive' || ' ' || (detail->>'first_seq') || '-' || (detail->>'last_seq')
		  || ' ' || (detail->>'rows'), ', ' ORDER BY seq) FROM lockbox.audit_log WHERE event = 'audit_archived'}),
	"lockbox_archive.audit_log_2026_01 $arch[0][3]-$arch[0][4] $arch[0][5], lockbox_archive.audit_log_2026_02 $arch[1][3]-$arch[1][4] $arch[1][5]",
	'... naming its table, seqs and rows');
is(sql(q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'lockbox.audit_log'::regclass
		  AND inhrelid IN ('lockbox_archive.audit_log_2026_01'::regclass, 'lockbox_archive.audit_log_2026_02'::regclass)}),
	'0', 'the archives are no partitions any more');
is(sql('SELECT count(*) FROM lockbox.audit_log'), $total - $arch[0][5] - $arch[1][5] + 2,
	'the live log keeps the rest and the two audit_archived rows');
ok(sql('SELECT count(*) FROM lockbox.audit_anchor') >= 1, 'the links into the archive are anchored');
is(sqlstate(undef, "SELECT * FROM lockbox_archive_audit('2026-03-01')"), '22023', 'archiving again: nothing to archive');
is(sqlstate('ret_dba', 'SELECT count(*) FROM lockbox_archive.audit_log_2026_01'), '42501',
	'a non-superuser DBA cannot read an archive');
is(sqlstate('ret_dba', 'DROP TABLE lockbox_archive.audit_log_2026_01'), '42501', '... nor drop it');
is(sqlstate('ret_aud', 'SELECT count(*) FROM lockbox_archive.audit_log_2026_01'), '42501',
	'an auditor verifies an archive but does not read it');

# --- the rest verifies, each archive verifies ---------------------------------
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'what remains verifies');
is(as_role('ret_aud', 'SELECT ok FROM lockbox_verify_audit()'), 't', '... for an auditor too');
for my $a (@arch)
{
	is(as_role('ret_aud', "SELECT ok || ' ' || rows_checked || ' ' || first_seq || ' ' || last_seq || ' ' || digest
			FROM lockbox_verify_audit_archive('$a->[0]')"),
		"true $a->[5] $a->[3] $a->[4] $a->[6]", "$a->[0] verifies, with the digest the audit recorded");
}
is(sql(q{SELECT jsonb_array_length((obj_description('lockbox_archive.audit_log_2026_02'::regclass, 'pg_class'))::jsonb->'anchors')}) > 0 ? 1 : 0,
	1, 'February carries the anchors of its links into January');
is(sql(q{SELECT count(*) > 0 AND bool_and(a.statement_query = s.query AND a.statement_relation = s.relation
			AND a.statement_command = s.command)
		  FROM lockbox_archive.audit_log_2026_01 a JOIN lockbox.audit_statement s ON s.id = a.statement_id}),
	't', "January's access rows carry the text of their statements");
is(sql(q{SELECT count(*) > 0 AND bool_and(a.statement_within_query = s.within_query)
		  FROM lockbox_archive.audit_log_2026_01 a JOIN lockbox.audit_statement s ON s.id = a.statement_id
		 WHERE s.within_query IS NOT NULL}),
	't', "and their parts (1.6: the client's statement of one within a DO block)");
is(sqlstate('ret_aud', "SELECT * FROM lockbox_verify_audit_archive('acme_data')"), '22023',
	'a table that is no archive is refused');
is(sqlstate('ret_eng', "SELECT * FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_01')"), '42501',
	'an engineer may not verify archives');

# new rows keep linking, and still verify
month_of_work();
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'new rows after the archive verify');
is(sql(q{SELECT ok FROM lockbox_verify_audit((SELECT jsonb_agg(jsonb_build_object('seq', seq, 'hash', encode(hash, 'hex')))
		  FROM lockbox.audit_anchor))}), 't', 'anchors kept outside that name archived rows still verify');

# --- tampering ---------------------------------------------------------------
# as a superuser who edits the catalogs to turn the append-only triggers off
# for a moment (ALTER TABLE ... DISABLE TRIGGER is refused, above); touching
# the tables' pg_class rows makes every session reread their triggers
sub guard
{
	my ($state) = @_;
	return qq{UPDATE pg_trigger SET tgenabled = '$state' WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc;
		UPDATE pg_class SET relname = relname
		 WHERE oid IN (SELECT tgrelid FROM pg_trigger WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc);};
}
sub tamper
{
	my ($table, $set, $where) = @_;
	sql(guard('D') . "UPDATE $table SET $set WHERE $where;" . guard('A'));
}
my $live_seq = sql(q{SELECT min(seq) FROM lockbox.audit_log_2026_03});
my $orig = sql("SELECT detail FROM lockbox.audit_log WHERE seq = $live_seq");
tamper('lockbox.audit_log_2026_03', q{detail = detail || '{"forged": true}'}, "seq = $live_seq");
is(sql('SELECT ok || $$ $$ || first_bad_seq FROM lockbox_verify_audit()'), "false $live_seq",
	'an edited remaining row is detected');
tamper('lockbox.audit_log_2026_03', "detail = '$orig'", "seq = $live_seq");
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'and verifies again once put back');

my ($aseq, $ahash) = split /\|/, sql('SELECT seq, encode(hash, $$hex$$) FROM lockbox.audit_anchor ORDER BY seq DESC LIMIT 1');
sql(guard('D') . "UPDATE lockbox.audit_anchor SET hash = sha256(hash) WHERE seq = $aseq;" . guard('A'));
is(sql('SELECT ok FROM lockbox_verify_audit()'), 'f', 'a changed anchor is detected');
sql(guard('D') . "UPDATE lockbox.audit_anchor SET hash = decode('$ahash', 'hex') WHERE seq = $aseq;" . guard('A'));
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'and verifies again once put back');

my $arch_seq = $arch[1][3] + 2;
my $arch_actor = sql("SELECT actor FROM lockbox_archive.audit_log_2026_02 WHERE seq = $arch_seq");
sql(qq{UPDATE lockbox_archive.audit_log_2026_02 SET actor = 'someone_else' WHERE seq = $arch_seq});
is(sql("SELECT ok || ' ' || first_bad_seq FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_02')"),
	"false $arch_seq", 'an edited archived row is detected');
sql(qq{UPDATE lockbox_archive.audit_log_2026_02 SET actor = '$arch_actor' WHERE seq = $arch_seq});
is(sql("SELECT ok FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_02')"), 't',
	'and verifies again once put back');
my $stmt_seq = sql(q{SELECT min(seq) FROM lockbox_archive.audit_log_2026_02 WHERE statement_id IS NOT NULL});
sql(qq{UPDATE lockbox_archive.audit_log_2026_02 SET statement_query = statement_query || ' ' WHERE seq = $stmt_seq});
is(sql("SELECT ok || ' ' || first_bad_seq FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_02')"),
	"false $stmt_seq", "an edited statement text in an archive is detected");
sql(qq{UPDATE lockbox_archive.audit_log_2026_02 SET statement_query = rtrim(statement_query, ' ') WHERE seq = $stmt_seq});
is(sql("SELECT ok FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_02')"), 't',
	'and verifies again once put back');
my $within_seq = sql(q{SELECT min(seq) FROM lockbox_archive.audit_log_2026_02 WHERE statement_within_query IS NOT NULL});
sql(qq{UPDATE lockbox_archive.audit_log_2026_02 SET statement_within_query = NULL WHERE seq = $within_seq});
is(sql("SELECT ok || ' ' || first_bad_seq FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_02')"),
	"false $within_seq", "an archived row's client statement taken out is detected");
sql(qq{UPDATE lockbox_archive.audit_log_2026_02 a SET statement_within_query = s.within_query
	FROM lockbox.audit_statement s WHERE s.id = a.statement_id AND a.seq = $within_seq});
is(sql("SELECT ok FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_02')"), 't',
	'and verifies again once put back');

# a row copied beside itself, its hash right: a repeated seq, in the live log
# (read in physical order) and in an archive (in seq order)
my $dup = sql(q{SELECT max(seq) FROM lockbox.audit_log_2026_03});
sql(qq{ALTER TABLE lockbox.audit_log_2026_03 DROP CONSTRAINT audit_log_2026_03_pkey;
	   INSERT INTO lockbox.audit_log SELECT * FROM lockbox.audit_log WHERE seq = $dup});
is(sql('SELECT ok || $$ $$ || first_bad_seq FROM lockbox_verify_audit()'), "false $dup",
	'a repeated seq in the live log is detected');
sql(guard('D') . qq{DELETE FROM lockbox.audit_log_2026_03 WHERE ctid = (SELECT max(ctid) FROM lockbox.audit_log_2026_03 WHERE seq = $dup);}
	. guard('A') . qq{ALTER TABLE lockbox.audit_log_2026_03 ADD CONSTRAINT audit_log_2026_03_pkey PRIMARY KEY (seq)});
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'and verifies again once removed');
my $adup = $arch[1][3] + 1;
sql(qq{ALTER TABLE lockbox_archive.audit_log_2026_02 DROP CONSTRAINT audit_log_2026_02_pkey;
	   INSERT INTO lockbox_archive.audit_log_2026_02 SELECT * FROM lockbox_archive.audit_log_2026_02 WHERE seq = $adup});
is(sql("SELECT ok || ' ' || first_bad_seq FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_02')"),
	"false $adup", 'a repeated seq in an archive is detected');
sql(qq{DELETE FROM lockbox_archive.audit_log_2026_02 WHERE ctid = (SELECT max(ctid) FROM lockbox_archive.audit_log_2026_02 WHERE seq = $adup);
	   ALTER TABLE lockbox_archive.audit_log_2026_02 ADD CONSTRAINT audit_log_2026_02_pkey PRIMARY KEY (seq)});
is(sql("SELECT ok FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_02')"), 't',
	'and verifies again once removed');

my $last = $arch[0][4];
my $saved = sql("SELECT t::text FROM lockbox_archive.audit_log_2026_01 t WHERE seq = $last");
sql("DELETE FROM lockbox_archive.audit_log_2026_01 WHERE seq = $last");
is(sql("SELECT ok || ' ' || first_bad_seq FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_01')"),
	"false $last", "an archive's last row removed is detected");
sql("INSERT INTO lockbox_archive.audit_log_2026_01 SELECT (\$\$$saved\$\$::lockbox_archive.audit_log_2026_01).*");
is(sql("SELECT ok FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_01')"), 't',
	'and verifies again once put back');

# whoever owns the archive removes its last row and rewrites the comment to
# match (rows, last seq, digest): the archive agrees with itself, not with
# the audit_archived row of the live log
my $comment = sql(q{SELECT obj_description('lockbox_archive.audit_log_2026_01'::regclass, 'pg_class')});
sub forge_comment
{
	my ($table) = @_;
	sql(qq{DO \$\$
		DECLARE m jsonb := obj_description('$table'::regclass, 'pg_class')::jsonb;
		BEGIN
			SELECT m || jsonb_build_object('rows', count(*), 'first_seq', min(seq), 'last_seq', max(seq),
					'digest', encode(sha256(string_agg(hash, ''::bytea ORDER BY seq)), 'hex'))
			  INTO m FROM $table;
			EXECUTE format('COMMENT ON TABLE $table IS %L', m::text);
		END \$\$});
}
sql("DELETE FROM lockbox_archive.audit_log_2026_01 WHERE seq = $last");
forge_comment('lockbox_archive.audit_log_2026_01');
is(sql("SELECT obj_description('lockbox_archive.audit_log_2026_01'::regclass, 'pg_class')::jsonb->>'rows'"),
	$arch[0][5] - 1, 'the forged comment records one row less');
is(sql("SELECT ok || ' ' || first_bad_seq FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_01')"),
	"false $last", 'an archive forged to match its comment is caught by its audit_archived row');
sql('ALTER TABLE lockbox_archive.audit_log_2026_01 RENAME TO audit_log_renamed');
is(sql("SELECT ok || ' ' || first_bad_seq FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_renamed')"),
	"false $last", '... renamed too (its seqs name the row)');
sql('ALTER TABLE lockbox_archive.audit_log_renamed RENAME TO audit_log_2026_01');
sql(qq{INSERT INTO lockbox_archive.audit_log_2026_01 SELECT (\$\$$saved\$\$::lockbox_archive.audit_log_2026_01).*;
	   COMMENT ON TABLE lockbox_archive.audit_log_2026_01 IS \$\$$comment\$\$});
is(sql("SELECT ok FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_01')"), 't',
	'and verifies again once put back');

# --- archiving while audit rows are written --------------------------------------
# A transaction that wrote an audit row and has not committed holds the
# archive back; a writer that comes after the archive waits for it; both rows
# end in the live log, linked, and everything verifies.
my $w1 = $node->background_psql('ret');
$w1->query_safe("BEGIN; SELECT lockbox_add_tenant('race_one');");
my $arc = $node->background_psql('ret');
$arc->query_until(qr/archiving/,
	"\\echo archiving\nSELECT archive || ' ' || row_count FROM lockbox_archive_audit('2026-04-01');\n");
$node->poll_query_until('ret', q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE query LIKE '%lockbox_archive_audit(''2026-04-01'')%' AND wait_event_type = 'Lock'})
  or die 'the archive did not wait';
ok(1, 'the archive waits for a transaction that wrote an audit row');
my $w2 = $node->background_psql('ret');
$w2->query_until(qr/writing/, "\\echo writing\nSELECT lockbox_add_tenant('race_two');\n");
$node->poll_query_until('ret', q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE query LIKE '%race_two%' AND wait_event_type = 'Lock'})
  or die 'the second writer did not wait';
ok(1, 'a writer that comes after the archive waits for it');
$w1->query_safe('COMMIT');
$arc->quit;
$w2->quit;
like($arc->{stdout}, qr/lockbox_archive\.audit_log_2026_03 \d+/, 'then March is archived');
is(sql(q{SELECT count(*) FROM lockbox.audit_log WHERE tenant IN ('race_one', 'race_two') AND event = 'add_tenant'}),
	'2', 'both rows are in the live log');
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the live log verifies');
is(sql("SELECT ok FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_03')"), 't', 'and so does March');

# --- an archive dumped and restored elsewhere verifies there -------------------
my $tmp = PostgreSQL::Test::Utils::tempdir;
$node->command_ok([ 'pg_dump', '-d', $node->connstr('ret'), '-t', 'lockbox_archive.audit_log_2026_01',
	'-f', "$tmp/jan.sql" ], 'pg_dump -t of an archive');
$node->safe_psql('postgres', 'CREATE DATABASE elsewhere');
$node->safe_psql('elsewhere', 'CREATE EXTENSION lockbox; CREATE SCHEMA lockbox_archive');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('elsewhere'), '-f', "$tmp/jan.sql" ],
	'restored into another database');
is($node->safe_psql('elsewhere', "SELECT ok || ' ' || rows_checked || ' ' || digest
		FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_01')"),
	"true $arch[0][5] $arch[0][6]", 'the restored archive verifies, with the same digest');
is($node->safe_psql('elsewhere', 'SELECT count(*) FROM lockbox.audit_statement'), '0',
	'... without the statements of lockbox.audit_statement');

# --- a whole dump restores into a working audit ------------------------------
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('ret'), '-f', "$tmp/ret.dump" ], 'pg_dump of the database');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), "$tmp/ret.dump" ], 'pg_restore');
my $r = sub { $node->safe_psql('restored', $_[0]) };
is($r->('SELECT count(*) FROM lockbox.audit_log'), sql('SELECT count(*) FROM lockbox.audit_log'),
	'the restored log has every row');
is($r->('SELECT ok FROM lockbox_verify_audit()'), 't', 'the restored log verifies (anchors restored too)');
is($r->(q{SELECT string_agg(DISTINCT t.tgenabled::text, '') FROM pg_trigger t JOIN pg_inherits i ON i.inhrelid = t.tgrelid
		 WHERE i.inhparent = 'lockbox.audit_log'::regclass}), 'A', 'the restored partitions\' triggers fire always');
is($r->(q{SELECT count(*) FROM pg_trigger t JOIN pg_inherits i ON i.inhrelid = t.tgrelid
		 WHERE i.inhparent = 'lockbox.audit_log'::regclass AND t.tgname = 'audit_log_no_truncate'}),
	sql(q{SELECT count(*) FROM pg_inherits WHERE inhparent = 'lockbox.audit_log'::regclass}),
	'every restored partition refuses TRUNCATE');
$r->("SELECT lockbox_add_tenant('globex')");
is($r->('SELECT ok FROM lockbox_verify_audit()'), 't', 'the restored audit takes new rows and verifies');
is($r->("SELECT ok FROM lockbox_verify_audit_archive('lockbox_archive.audit_log_2026_01')"), 't',
	'the restored archives verify');

# --- uninstalling leaves the archives ------------------------------------------
$r->(q{SELECT lockbox_unprotect('acme_data'); DROP EXTENSION lockbox});
is($r->(q{SELECT string_agg(relname, ' ' ORDER BY relname) FROM pg_class
		  WHERE relnamespace = 'lockbox_archive'::regnamespace AND relkind = 'r'}),
	'audit_log_2026_01 audit_log_2026_02 audit_log_2026_03', 'DROP EXTENSION leaves the archives');
is($r->(q{SELECT count(*) FROM pg_namespace WHERE nspname = 'lockbox'}), '0', '... and drops the rest');

done_testing();
