# The access log: every engineer statement on protected data, allowed or
# refused, recorded for every request covering it, and never lost.
#
# - attribution: one statement under two open requests (tenants A and B)
#   is recorded for each; each tenant's approver sees their own row
# - attempts: refused statements (write under read access, TRUNCATE, COPY
#   FROM, LOCK, a table without a grant, a delete whose foreign key action
#   reaches a protected table) are recorded with the reason
# - nothing lost: while the worker's passes fail (its audit inserts are
#   refused by a constraint), statements are run and rolled back (also in
#   aborted subtransactions), sessions end, the engineer's backend, the
#   worker and the postmaster are killed with SIGKILL, the server is stopped
#   in immediate mode; once the worker can write again, every statement is
#   in the access log exactly once for each request
# - fail closed: when the record cannot be written, the statement is refused
# - whole statements: the text up to lockbox.access_log_max_query, beyond it
#   the prefix, the full length and its sha256
# - the server log: one "LOCKBOX: {json}" line per event, as lockbox.log says
# - anchors: the audit's heads in the server log and in notifications; a
#   superuser's rewrite with every later hash recomputed passes
#   lockbox_verify_audit() after a restart, and is named by the check
#   against an anchor kept from a notification
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use JSON::PP;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('access_log');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
restart_after_crash = on
lockbox.anchor_interval = '1s'
lockbox.access_log_max_query = '1kB'
});
$node->start;

my $db = 'al';
LockboxTest::setup($node, $db, engineer => 'al_eng');
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE al_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE al_rev LOGIN IN ROLE lockbox_reviewer;
CREATE ROLE al_app_a LOGIN IN ROLE lockbox_approver;
CREATE ROLE al_app_b LOGIN IN ROLE lockbox_approver;
CREATE ROLE al_aud LOGIN IN ROLE lockbox_auditor;
SELECT lockbox_add_tenant('A');
SELECT lockbox_add_tenant('B');
SELECT lockbox_add_tenant('C');
SELECT lockbox_add_approver('A', 'al_app_a');
SELECT lockbox_add_approver('B', 'al_app_b');
CREATE TABLE t (tenant text, v int);
INSERT INTO t VALUES ('A', 1), ('B', 2), ('C', 3);
CREATE TABLE u (v int);
GRANT SELECT, UPDATE ON t, u TO lockbox_engineer;
SELECT lockbox_protect('t', tenant_column => 'tenant');
SELECT lockbox_protect('u', tenant => 'C');
CREATE TABLE cu (id int PRIMARY KEY);
CREATE TABLE o (tenant text, cu_id int REFERENCES cu ON DELETE CASCADE);
INSERT INTO cu VALUES (1);
INSERT INTO o VALUES ('A', 1), ('B', 1);
GRANT SELECT, DELETE ON cu TO lockbox_engineer;
SELECT lockbox_protect('o', tenant_column => 'tenant');
});

my $ra = as_role('al_eng',
	q{SELECT lockbox_request('A', 'Invoices of A look wrong since Monday')});
my $rb = as_role('al_eng',
	q{SELECT lockbox_request('B', 'Invoices of B look wrong since Monday')});
as_role('al_rev', "SELECT lockbox_approve($ra); SELECT lockbox_approve($rb)");
as_role('al_app_a', "SELECT lockbox_approve($ra)");
as_role('al_app_b', "SELECT lockbox_approve($rb)");

# ---------------------------------------------------------------------
# Attribution: one statement, two covering requests
# ---------------------------------------------------------------------
my ($out) = as_eng('SELECT /* two */ count(*) FROM t');
is($out, '2', 'the engineer reads the rows of both tenants');
is(wait_rows("query LIKE '%/* two */%'", 2), 2,
	'the statement is recorded for each covering request');
is( sql(qq{SELECT string_agg(request_id || ':' || tenant || ':' || outcome, ',' ORDER BY tenant)
	FROM lockbox.access_log WHERE query LIKE '%/* two */%'}),
	"$ra:A:allowed,$rb:B:allowed",
	'under request A for tenant A, under request B for tenant B');
is( as_role('al_app_a',
		q{SELECT string_agg(tenant, ',') FROM lockbox.access_log WHERE query LIKE '%/* two */%'}),
	'A', "tenant A's approver sees A's row");
is( as_role('al_app_b',
		q{SELECT string_agg(tenant, ',') FROM lockbox.access_log WHERE query LIKE '%/* two */%'}),
	'B', "tenant B's approver sees B's row");

# ---------------------------------------------------------------------
# Attempts
# ---------------------------------------------------------------------
my $err;
(undef, $err) = as_eng(q{UPDATE t SET v = v /* write */});
like($err, qr/lockbox access to table "public.t" is read-only/, 'a write under read access is refused');
(undef, $err) = as_eng(q{TRUNCATE t /* truncate */});
like($err, qr/TRUNCATE is not allowed/, 'TRUNCATE is refused');
(undef, $err) = as_eng(q{COPY t FROM '/dev/null' /* copy */});
like($err, qr/COPY FROM is not allowed/, 'COPY FROM is refused');
(undef, $err) = as_eng(q{BEGIN; LOCK t /* lock */; COMMIT});
like($err, qr/LOCK TABLE is not allowed/, 'LOCK is refused');
(undef, $err) = as_eng(q{SELECT * FROM u /* nogrant */});
like($err, qr/no approved lockbox access to table/, 'a table without a grant is refused');
(undef, $err) = as_eng(q{DELETE FROM cu /* cascade */});
like($err, qr/would change rows of lockbox-protected table "public.o" through foreign key "o_cu_id_fkey"/,
	'a delete whose ON DELETE CASCADE reaches a protected table is refused');

is(wait_rows(q{outcome = 'refused'}, 11), 11,
	'each refused attempt is recorded (once per request held on the table; once without)');
is( sql(q{SELECT string_agg(command, ',' ORDER BY command)
	FROM lockbox.access_log WHERE outcome = 'refused' AND tenant = 'A'}),
	'COPY FROM,DELETE,LOCK TABLE,TRUNCATE,UPDATE',
	"the attempts under A's grant are attributed to A");
is( sql(q{SELECT reason FROM lockbox.access_log WHERE outcome = 'refused' AND command = 'UPDATE' LIMIT 1}),
	'lockbox access to table "public.t" is read-only', 'with the reason');
is( sql(q{SELECT count(*) FROM lockbox.access_log
	WHERE query LIKE '%/* nogrant */%' AND request_id IS NULL AND tenant IS NULL
	  AND relation = 'public.u'}),
	'1', 'an attempt without any grant is recorded without a request');
is( as_role('al_app_a',
		q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%/* nogrant */%'}),
	'0', 'which no tenant approver sees');
is( as_role('al_aud',
		q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%/* nogrant */%'}),
	'1', 'and the auditor does');
is( as_role('al_rev',
		q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%/* nogrant */%'}),
	'1', 'and the reviewer does');
is( sql(q{SELECT string_agg(tenant, ',' ORDER BY tenant) || ':' || min(reason) FROM lockbox.access_log
	WHERE query LIKE '%/* cascade */%' AND outcome = 'refused' AND relation = 'public.o'}),
	'A,B:the statement would change rows of lockbox-protected table "public.o" through foreign key "o_cu_id_fkey"',
	'the delete whose foreign key action reaches a protected table is recorded against that table, under the requests covering it');
is(sql(q{SELECT count(*) FROM o}), '2', 'and its rows are untouched');

# ---------------------------------------------------------------------
# Whole statements
# ---------------------------------------------------------------------
my $long = 'SELECT /* long ' . ('x' x 3000) . ' */ count(*) FROM t';
as_eng($long);
is(wait_rows(q{query LIKE '%/* long %'}, 2), 2, 'a long statement is recorded');
is( sql(q{SELECT octet_length(query) || ',' || query_length || ',' || query_sha256
	FROM lockbox.access_log WHERE query LIKE '%/* long %' LIMIT 1}),
	'1024,' . length($long) . ',' . sha256_hex($long),
	'beyond lockbox.access_log_max_query: the prefix, the full length and its sha256');

# ---------------------------------------------------------------------
# Nothing lost
# ---------------------------------------------------------------------
# Hold the worker's audit inserts of statements (its passes fail) while the
# faults happen; then let it write, and count.
sub hold
{
	sql(q{ALTER TABLE lockbox.audit_log ADD CONSTRAINT hold_access
		  CHECK (event NOT IN ('access', 'refused')) NOT VALID});
}
sub release { sql(q{ALTER TABLE lockbox.audit_log DROP CONSTRAINT hold_access}); }

sub statements
{
	my ($tag, $n) = @_;
	return join('', map { "SELECT /* $tag $_ */ count(*) FROM t;\n" } 1 .. $n);
}

sub once_each
{
	my ($tag, $n, $what) = @_;
	is(wait_rows("query LIKE '%/* $tag %'", 2 * $n), 2 * $n,
		"$what: $n statements, each recorded for both requests");
	is( sql(qq{SELECT count(*) FROM (SELECT query, request_id FROM lockbox.access_log
		 WHERE query LIKE '%/* $tag %' GROUP BY 1, 2 HAVING count(*) > 1) d}),
		'0', "$what: none twice");
}

my $worker_q = q{SELECT pid FROM pg_stat_activity
	WHERE backend_type = 'lockbox worker' AND datname = 'al'};

hold();
# rolled back, in an aborted subtransaction, 300 distinct statements
as_eng("BEGIN;\n" . statements('rb', 300) . "ROLLBACK;\n");
as_eng("BEGIN; SAVEPOINT s;\n" . statements('sub', 20) . "ROLLBACK TO s; COMMIT;\n");
sleep 1;
is(sql(q{SELECT count(*) FROM lockbox.access_log WHERE query LIKE '%/* rb %'}),
	'0', 'while the worker fails, nothing reaches the audit');
ok(sql(q{SELECT worker_failures > 0 FROM lockbox.stats}) eq 't',
	'the failing passes are counted');
release();
once_each('rb', 300, 'rollback, failing passes, session exit');
once_each('sub', 20, 'aborted subtransaction');

# kill -9 of the engineer's backend
hold();
{
	my $h = $node->background_psql($db, extra_params => [ '-U', 'al_eng' ]);
	$h->query_safe(statements('k9b', 50));
	my $pid = $h->query_safe('SELECT pg_backend_pid()');
	my $log_offset = -s $node->logfile;
	kill 'KILL', $pid;
	eval { $h->quit; };
	# (a connection may still get in before the postmaster hears of the
	# death: wait for the restart it makes, then for connections; psql
	# started meanwhile may exit before it reads its query, and IPC::Run
	# dies of the broken pipe)
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
	$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
}
$node->poll_query_until('postgres', 'SELECT true') or die;
release();
once_each('k9b', 50, "kill -9 of the engineer's backend");

# kill -9 of the worker, in the middle of failing passes
hold();
as_eng(statements('k9w', 50));
{
	my $wpid;
	for (1 .. 100)
	{
		$wpid = sql($worker_q);
		last if $wpid;
		usleep(100_000);
	}
	my $log_offset = -s $node->logfile;
	kill 'KILL', $wpid;
	$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
	$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
}
$node->poll_query_until('postgres', 'SELECT true') or die;
release();
once_each('k9w', 50, 'kill -9 of the worker');

# kill -9 of the postmaster the moment the session ended
as_eng(statements('k9p', 400));
{
	my $pmpid = $node->{_pid};
	$node->kill9;
	# the postmaster gone, and its children after it
	for (1 .. 100)
	{
		last unless kill 0, $pmpid;
		usleep(100_000);
	}
	my $started = 0;
	for (1 .. 50)
	{
		last if ($started = $node->start(fail_ok => 1));
		usleep(200_000);
	}
	BAIL_OUT('the server did not start after kill -9 of the postmaster') unless $started;
}
once_each('k9p', 400, 'kill -9 of the postmaster');

# immediate shutdown
hold();
as_eng(statements('imm', 100));
$node->stop('immediate');
$node->start;
release();
once_each('imm', 100, 'immediate shutdown');

is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies');

# ---------------------------------------------------------------------
# Fail closed
# ---------------------------------------------------------------------
my $dboid = sql("SELECT oid FROM pg_database WHERE datname = '$db'");
my $spool = $node->data_dir . "/lockbox_spool/$dboid";
chmod 0500, $spool or die "chmod $spool: $!";
my ($o, $e) = as_eng('SELECT /* closed */ count(*) FROM t');
chmod 0700, $spool;
like($e, qr/could not record the statement in the lockbox access log/,
	'a statement that cannot be recorded is refused');
is($o, '', 'and does not run');

# ---------------------------------------------------------------------
# The server log
# ---------------------------------------------------------------------
my @lines = grep { /LOCKBOX: \{/ } split /\n/, slurp_file($node->logfile);
my @events = map { /LOCKBOX: (\{.*\})$/ ? decode_json($1) : () } @lines;
ok(scalar(grep { $_->{event} eq 'access' && $_->{request_id} } @events) >= 1,
	'access events are in the server log');
my ($refused) = grep { $_->{event} eq 'refused' } @events;
ok($refused && $refused->{detail}{reason} && $refused->{hash} =~ /^[0-9a-f]{64}$/,
	'refused events are, with the reason and the row hash');
ok(scalar(grep { $_->{event} eq 'approve' } @events) >= 2,
	'lifecycle events are');
ok(scalar(grep { $_->{event} eq 'anchor' && @{ $_->{anchors} } >= 1 } @events) >= 1,
	'the worker writes anchors');
# (all lines compared in one query: one psql per line took a minute)
my @logged = grep { $_->{event} ne 'anchor' } @events;
my $bad = sql(
	"SELECT coalesce(min(l.seq)::text, '')
	   FROM unnest('{" . join(',', map { $_->{seq} } @logged) . "}'::bigint[],
				   '{" . join(',', map { "\"$_->{event},$_->{hash}\"" } @logged) . "}'::text[]) l(seq, line)
	   LEFT JOIN lockbox.audit_log a ON a.seq = l.seq
	  WHERE a.event || ',' || encode(a.hash, 'hex') IS DISTINCT FROM l.line");
is($bad, '', 'every log line matches its audit row (event and hash)')
  or diag("log line of seq $bad does not match its audit row");

$node->append_conf('postgresql.conf', "lockbox.log = 'refused'");
$node->reload;
my $before = scalar(@lines);
sql(q{SELECT lockbox_add_tenant('D')});
as_eng(q{TRUNCATE t /* after */});
wait_rows(q{query LIKE '%/* after */%'}, 2);
@lines = grep { /LOCKBOX: \{/ } split /\n/, slurp_file($node->logfile);
my @new = map { /LOCKBOX: (\{.*\})$/ ? decode_json($1) : () } @lines[ $before .. $#lines ];
ok(!grep({ $_->{event} eq 'add_tenant' } @new), "lockbox.log = 'refused': no lifecycle lines");
ok(scalar(grep { $_->{event} eq 'refused' } @new) == 2, "lockbox.log = 'refused': the refused ones");

# ---------------------------------------------------------------------
# Compact rows (1.3): an access row names its statement, stored once, and
# keeps the rest in typed columns; its hash (format v2) covers them all
# ---------------------------------------------------------------------
is(sql(q{SELECT count(*) FILTER (WHERE detail IS NULL AND statement_id IS NOT NULL)
		|| ',' || count(*) FROM lockbox.audit_log WHERE event IN ('access', 'refused')}),
	sql(q{SELECT count(*) || ',' || count(*) FROM lockbox.audit_log WHERE event IN ('access', 'refused')}),
	'access and refused rows have no detail of their own: they name their statement');
is(sql(q{SELECT count(*) FROM (SELECT relation, command, query FROM lockbox.audit_statement
		GROUP BY 1, 2, 3 HAVING count(*) > 1) d}),
	'0', 'each statement is stored once');
is(sql(q{SELECT count(*) FROM lockbox.audit WHERE event = 'access'
		AND detail ?& ARRAY['relation', 'command', 'query', 'pid', 'statements']}),
	sql(q{SELECT count(*) FROM lockbox.audit WHERE event = 'access'}),
	'lockbox.audit shows their detail as before');
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies');
my $acc = sql(q{SELECT min(seq) FROM lockbox.audit_log WHERE event = 'access'});
my $stmt = sql("SELECT statement_id FROM lockbox.audit_log WHERE seq = $acc");
my $first_naming = sql("SELECT min(seq) FROM lockbox.audit_log WHERE statement_id = $stmt");
sub tamper
{
	my ($change) = @_;
	# (a superuser editing the catalogs: ALTER TABLE ... DISABLE TRIGGER is refused)
	sql(qq{UPDATE pg_trigger SET tgenabled = 'D' WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc;
		UPDATE pg_class SET relname = relname WHERE oid IN
			(SELECT tgrelid FROM pg_trigger WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc);
		$change;
		UPDATE pg_trigger SET tgenabled = 'A' WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc;
		UPDATE pg_class SET relname = relname WHERE oid IN
			(SELECT tgrelid FROM pg_trigger WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc);});
	return sql('SELECT ok || \',\' || coalesce(first_bad_seq::text, \'\') FROM lockbox_verify_audit()');
}
is(tamper("UPDATE lockbox.audit_log SET pid = pid + 1 WHERE seq = $acc"),
	"false,$acc", 'an access row with another pid is named');
is(tamper("UPDATE lockbox.audit_log SET pid = pid - 1 WHERE seq = $acc"),
	'true,', 'put back, it verifies');
is(tamper("UPDATE lockbox.audit_statement SET query = query || ' ' WHERE id = $stmt"),
	"false,$first_naming", "a statement's text edited: the first row naming it is named");
is(tamper("UPDATE lockbox.audit_statement SET query = left(query, -1) WHERE id = $stmt"),
	'true,', 'put back, it verifies');
my $other = sql("SELECT min(id) FROM lockbox.audit_statement WHERE id <> $stmt");
is(tamper("UPDATE lockbox.audit_log SET statement_id = $other WHERE seq = $acc"),
	"false,$acc", 'an access row pointed at another statement is named');
is(tamper("UPDATE lockbox.audit_log SET statement_id = $stmt WHERE seq = $acc"),
	'true,', 'put back, it verifies');
my $implicit = sql(q{SELECT max(seq) FROM lockbox.audit_log WHERE parents IS NULL});
is(tamper("UPDATE lockbox.audit_log SET parents = ARRAY[$implicit - 1] WHERE seq = $implicit"),
	'true,', 'parents stored in full or left implicit (seq - 1) verify alike');
is(tamper("UPDATE lockbox.audit_log SET parents = NULL WHERE seq = $implicit"),
	'true,', 'and back');
my $explicit = sql(q{SELECT max(seq) FROM lockbox.audit_log
	WHERE parents IS NOT NULL AND parents <> ARRAY[seq - 1]});
my $explicit_parents = sql("SELECT parents FROM lockbox.audit_log WHERE seq = $explicit");
is(tamper("UPDATE lockbox.audit_log SET parents = NULL WHERE seq = $explicit"),
	"false,$explicit", 'a row whose parents are dropped is named');
is(tamper("UPDATE lockbox.audit_log SET parents = '$explicit_parents' WHERE seq = $explicit"),
	'true,', 'put back, it verifies');

# ---------------------------------------------------------------------
# Anchors
# ---------------------------------------------------------------------
my $rc = as_role('al_eng', q{SELECT lockbox_request('A', 'One more look at the invoices of A')});
as_role('al_rev', "SELECT lockbox_approve($rc)");
my $anchor = sql(qq{SELECT payload->'anchors' FROM lockbox.notification
	WHERE request_id = $rc AND event = 'approval_requested' LIMIT 1});
my $aseq = decode_json($anchor)->[0]{seq};
is(sql("SELECT event FROM lockbox.audit_log WHERE seq = $aseq"), 'approve',
	"the notification's anchor is the review's audit row");
as_role('al_app_a', "SELECT lockbox_approve($rc)");
as_eng('SELECT /* later */ count(*) FROM t');
wait_rows(q{query LIKE '%/* later */%'}, 3);
is(sql("SELECT ok FROM lockbox_verify_audit('$anchor')"), 't', 'the anchor verifies');

my ($r, $so, $se) = $node->psql($db,
	"SET session_replication_role = replica; UPDATE lockbox.audit_log SET detail = '{}' WHERE seq = $aseq");
like($se, qr/append-only/, 'the audit stays append-only under session_replication_role = replica');

# the attacker: rewrite the row, recompute every later hash as lockbox does
sql(q{
CREATE FUNCTION public.t_txt(s text) RETURNS bytea LANGUAGE sql AS $$
  SELECT CASE WHEN s IS NULL THEN '\x01'::bytea
	ELSE '\x00'::bytea || int4send(octet_length(s)) || convert_to(s, 'UTF8') END $$;
CREATE FUNCTION public.t_hash(a lockbox.audit_log) RETURNS bytea LANGUAGE sql AS $$
  SELECT sha256(convert_to(CASE WHEN a.hash_v1 THEN 'lockbox audit v1' ELSE 'lockbox audit v2' END, 'UTF8')
	|| int8send(coalesce(array_length(coalesce(a.parents, ARRAY[a.seq - 1]), 1), 0))
	|| coalesce((SELECT string_agg(int8send(p.seq) || p.hash, ''::bytea ORDER BY p.seq)
				   FROM lockbox.audit_log p
				  WHERE p.seq = ANY (coalesce(a.parents, ARRAY[a.seq - 1]))), ''::bytea)
	|| int8send(a.seq)
	|| int8send(((extract(epoch FROM a.at) - 946684800) * 1000000)::bigint)
	|| public.t_txt(coalesce(a.session_user_name, a.actor)) || public.t_txt(a.actor)
	|| public.t_txt(a.event)
	|| CASE WHEN a.request_id IS NULL THEN '\x00'::bytea
			ELSE '\x01'::bytea || int8send(a.request_id) END
	|| public.t_txt(a.tenant)
	|| CASE WHEN a.hash_v1 THEN public.t_txt(a.detail::text)
			WHEN a.detail IS NOT NULL THEN convert_to('j', 'UTF8') || '\x00'::bytea
				|| int4send(length(lockbox.jsonb_bytes(a.detail))) || lockbox.jsonb_bytes(a.detail)
			ELSE convert_to('a', 'UTF8')
				|| (SELECT sha256(convert_to('lockbox statement', 'UTF8') || public.t_txt(s.relation)
							   || public.t_txt(s.command) || public.t_txt(s.query))
					  FROM lockbox.audit_statement s WHERE s.id = a.statement_id)
				|| int8send(coalesce(a.pid, 0)::bigint) || int8send(coalesce(a.statements, 1)::bigint)
				|| int8send(coalesce(a.last_at_usec, -1)) || int8send(coalesce(a.query_length, -1))
				|| public.t_txt(a.query_sha256) || public.t_txt(a.reason) || public.t_txt(a.node)
	   END) $$;
});
is(sql('SELECT count(*) FROM lockbox.audit_log a WHERE public.t_hash(a) <> a.hash'),
	'0', "the attacker's hash function reproduces every row's hash");
sql(qq{
UPDATE pg_trigger SET tgenabled = 'D' WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc;
UPDATE pg_class SET relname = relname WHERE oid IN
	(SELECT tgrelid FROM pg_trigger WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc);
UPDATE lockbox.audit_log SET detail = detail || '{"comment": "nothing to see"}' WHERE seq = $aseq;
DO \$\$
DECLARE r record;
BEGIN
  FOR r IN SELECT seq FROM lockbox.audit_log WHERE seq >= $aseq ORDER BY seq LOOP
	UPDATE lockbox.audit_log a SET hash = public.t_hash(a) WHERE a.seq = r.seq;
  END LOOP;
END \$\$;
UPDATE pg_trigger SET tgenabled = 'A' WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc;
UPDATE pg_class SET relname = relname WHERE oid IN
	(SELECT tgrelid FROM pg_trigger WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc);
DROP FUNCTION public.t_hash(lockbox.audit_log);
DROP FUNCTION public.t_txt(text);
});
$node->restart;
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't',
	'after a restart, the rewrite passes the check without anchors');
is(sql("SELECT ok || ',' || first_bad_seq FROM lockbox_verify_audit('$anchor')"),
	"false,$aseq", 'the check against the kept anchor names the rewritten row');

# ---------------------------------------------------------------------
# A long session moves on to a new spool file every 16 MB; the worker
# removes the ones it finished while the session goes on
# ---------------------------------------------------------------------
$node->append_conf('postgresql.conf', "lockbox.access_log_max_query = '1MB'");
$node->reload;
{
	my $h = $node->background_psql($db, extra_params => [ '-U', 'al_eng' ]);
	my $pad = 'y' x (1024 * 1000);
	for my $i (1 .. 20)
	{
		$h->query_safe("SELECT /* big $i $pad */ count(*) FROM t");
	}
	my $pid = $h->query_safe('SELECT pg_backend_pid()');
	is(wait_rows(q{query LIKE '%/* big %'}, 60), 60,
		'20 statements of 1 MB each, recorded for each of the three open requests');
	my $files;
	for (1 .. 100)
	{
		opendir(my $dh, $spool) or die "opendir $spool: $!";
		$files = join(',', sort grep { /^$pid\./ } readdir($dh));
		closedir($dh);
		last if $files =~ /^\Q$pid\E\.\d+\.2$/;
		usleep(100_000);
	}
	like($files, qr/^\Q$pid\E\.\d+\.2$/,
		'the session writes its second spool file; the first, audited, is gone');
	my $long = 'z' x 1_200_000;
	$h->query_safe("SELECT /* longest */ count(*) FROM t WHERE '$long' <> ''");
	is(wait_rows(q{query LIKE '%/* longest */%' AND query_length > 1200000
	                 AND octet_length(query) = 1048576}, 3), 3,
		'a statement beyond 1MB is audited with its first 1MB and its full length, per request');
	$h->quit;
}

# ---------------------------------------------------------------------
# DROP DATABASE takes the database's spool with it
# ---------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE al2');
$node->safe_psql('al2', q{
CREATE EXTENSION lockbox;
CREATE TABLE v (tenant text);
GRANT SELECT ON v TO lockbox_engineer;
SELECT lockbox_protect('v', tenant_column => 'tenant');
});
my $oid2 = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'al2'");
$node->psql('al2', 'SELECT * FROM v', extra_params => [ '-U', 'al_eng' ]);
ok(-d $node->data_dir . "/lockbox_spool/$oid2", 'a database where engineers ran statements has a spool');
$node->safe_psql('postgres', 'DROP DATABASE al2 WITH (FORCE)');
ok(!-e $node->data_dir . "/lockbox_spool/$oid2", 'DROP DATABASE removes it');

done_testing();
