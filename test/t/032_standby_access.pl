# Engineers on hot standbys, audited on the primary (README "Replicas").
#
# A primary, a streaming standby (sb1) and a standby cascading from it
# (sb2), each standby forwarding to the primary as a login role of
# lockbox_forwarder named as the standby.
#
# - a standby made from a base backup sets aside the spool files copied
#   with it (its source audits them)
# - an engineer with an approved request reads exactly the tenant's rows on
#   a standby; the statement is in the primary's access log with the
#   standby's name, and a refused attempt too
# - the cascading standby forwards the same way
# - a lifecycle function on a standby fails with 25006, lockbox's message
#   and a hint, no internal statement
# - the primary down: statements on the standby wait there (the backlog
#   shows them), past lockbox.standby_backlog_max they are refused (53400);
#   the primary back, each is forwarded exactly once and statements run again
# - a statement longer than a forwarded chunk (1 MB of text kept,
#   lockbox.access_log_max_query = 1MB) is forwarded whole, once, and the
#   session's next statements after it
# - a spool file with a damaged record before others stops there, shows in
#   lockbox.standby_backlog and counts toward the bound
# - a forwarder cannot hand in records for another node, nor too many bytes
#   or text invalid in the database's encoding, nor make progress rows by
#   asking about files, nor records of another installation of lockbox; a
#   conninfo that names another cluster gets no record
# - a session's cached view of the protected tables follows replay
# - a revocation on the primary ends the engineer's session on the standby
#   within 2 seconds of its replay
# - promotion: records the standby held are written once by its own worker,
#   those forwarded before are not repeated, and the audit verifies
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$primary->start;

my $db = 'shop';
$primary->safe_psql('postgres',
	"CREATE DATABASE $db ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0");
$primary->safe_psql(
	$db, q{
CREATE EXTENSION lockbox;
CREATE ROLE sa_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE sa_rev LOGIN IN ROLE lockbox_reviewer;
CREATE ROLE sa_app LOGIN IN ROLE lockbox_approver;
CREATE ROLE sb1 LOGIN IN ROLE lockbox_forwarder;
CREATE ROLE sb2 LOGIN IN ROLE lockbox_forwarder;
CREATE TABLE invoices (id int PRIMARY KEY, tenant text NOT NULL, total numeric);
INSERT INTO invoices VALUES (1, 'acme', 10), (2, 'acme', 11), (3, 'globex', 20);
CREATE TABLE secrets (v int);
GRANT SELECT ON invoices, secrets TO lockbox_engineer;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_tenant('globex');
SELECT lockbox_add_approver('acme', 'sa_app');
SELECT lockbox_protect('invoices', tenant_column => 'tenant');
SELECT lockbox_protect('secrets', tenant => 'globex');
});

sub approved_request
{
	my $id = $primary->safe_psql($db,
		q{SET SESSION AUTHORIZATION sa_eng; SELECT lockbox_request('acme', 'invoices look wrong on the replica', duration => '1 hour')});
	$primary->safe_psql($db, "SET SESSION AUTHORIZATION sa_rev; SELECT lockbox_approve($id)");
	$primary->safe_psql($db, "SET SESSION AUTHORIZATION sa_app; SELECT lockbox_approve($id)");
	return $id;
}
my $r1 = approved_request();

my $forward = 'host=' . $primary->host . ' port=' . $primary->port;
$primary->backup('b1');
# a spool file of the primary's, copied with the base backup
my $shop_oid = $primary->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = '$db'");
my $copied = $primary->backup_dir . "/b1/lockbox_spool/$shop_oid/4242.1.1";
mkdir $primary->backup_dir . "/b1/lockbox_spool/$shop_oid";
PostgreSQL::Test::Utils::append_to_file($copied, "written on the primary");
my $sb1 = PostgreSQL::Test::Cluster->new('sb1');
$sb1->init_from_backup($primary, 'b1', has_streaming => 1);
$sb1->append_conf('postgresql.conf', "lockbox.primary_conninfo = '$forward user=sb1'");
$sb1->start;
ok(!-e $sb1->data_dir . "/lockbox_spool/$shop_oid/4242.1.1",
	'a standby does not keep the spool files copied from its source with the base backup');
ok(-e $sb1->data_dir . "/lockbox_spool/set_aside/$shop_oid.4242.1.1",
	'it sets them aside, not deleted');
like(slurp_file($sb1->logfile), qr/set aside 1 lockbox spool files of node "primary" in "lockbox_spool\/set_aside": this standby is node "sb1"/,
	'and says so');
$sb1->backup('b2');
my $sb2 = PostgreSQL::Test::Cluster->new('standby_two');
$sb2->init_from_backup($sb1, 'b2', has_streaming => 1);
$sb2->append_conf('postgresql.conf',
	"lockbox.primary_conninfo = '$forward user=sb2'\nlockbox.node_name = 'sb2'");
$sb2->start;
$primary->wait_for_catchup($sb1);
# (the primary's write position, the end of its last record: its insert
# position after the WAL switch of a backup lies past the next page header,
# which no standby replays until the next record, up to 15 s later)
$sb1->wait_for_catchup($sb2, 'replay', $primary->lsn('write'));

# an engineer's statements in a session of their own; returns (out, err)
sub as_eng
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', 'sa_eng' ]);
	return ($out, $err);
}

sub logged
{
	my ($node, $cond) = @_;
	return $node->safe_psql($db, "SELECT count(*) FROM lockbox.access_log WHERE $cond");
}

# --- reads on standbys, recorded on the primary --------------------------------
my ($out, $err) = as_eng($sb1, 'SELECT /* sb1 read */ string_agg(id::text, \',\' ORDER BY id) FROM invoices');
is($out, '1,2', "sb1: the engineer reads exactly acme's rows");
ok( $primary->poll_query_until($db,
		q{SELECT count(*) = 1 FROM lockbox.access_log
		   WHERE query LIKE '%/* sb1 read */%' AND node = 'sb1' AND outcome = 'allowed'}),
	'the statement is in the primary\'s access log, node sb1');
is( $primary->safe_psql($db,
		q{SELECT request_id || ' ' || tenant || ' ' || engineer || ' ' || relation
		    FROM lockbox.access_log WHERE query LIKE '%/* sb1 read */%'}),
	"$r1 acme sa_eng public.invoices", 'under the request, for the tenant, by the engineer');

($out, $err) = as_eng($sb1, 'SELECT /* sb1 refused */ * FROM secrets');
like($err, qr/ERROR:  42501: no approved lockbox access to table "public\.secrets"/,
	'sb1: a table without a grant is refused as on the primary');
ok( $primary->poll_query_until($db,
		q{SELECT count(*) = 1 FROM lockbox.access_log
		   WHERE query LIKE '%/* sb1 refused */%' AND node = 'sb1' AND outcome = 'refused'}),
	'and the refused attempt is recorded on the primary');

($out, $err) = as_eng($sb2, 'SELECT /* sb2 read */ count(*) FROM invoices');
is($out, '2', 'sb2 (cascading): the engineer reads acme\'s rows');
ok( $primary->poll_query_until($db,
		q{SELECT count(*) = 1 FROM lockbox.access_log
		   WHERE query LIKE '%/* sb2 read */%' AND node = 'sb2'}),
	'recorded on the primary with node sb2 (lockbox.node_name)');
ok($sb1->poll_query_until($db, q{SELECT count(*) = 1 FROM lockbox.access_log WHERE node = 'sb2'}),
	'and replicated back to the standbys');
like(slurp_file($sb1->logfile), qr/LOCKBOX: \{"at": "[^"]+", "event": "access", "actor": "sa_eng", "session_user": "sa_eng", "request_id": $r1, "node": "sb1", "detail": \{[^\n]*sb1 read/,
	"sb1's server log has the forwarded statement's LOCKBOX line");

# a statement's text, bound values and client statement travel apart (1.6)
($out, $err) = as_eng($sb1, q{PREPARE sbp(int) AS SELECT /* sb1 parts */ count(*) FROM invoices WHERE id <> $1;
EXECUTE sbp(7);});
is($out, '2', 'sb1: a prepared statement executed with a value');
ok( $primary->poll_query_until($db,
		q{SELECT count(*) = 1 FROM lockbox.access_log
		   WHERE query = 'PREPARE sbp(int) AS SELECT /* sb1 parts */ count(*) FROM invoices WHERE id <> $1;'
			 AND parameters = '$1 = ''7''' AND within_query = 'EXECUTE sbp(7);' AND node = 'sb1'}),
	'on the primary its text, value and EXECUTE are apart, as on a primary');

# --- a record longer than a forwarded chunk -----------------------------------------
$sb1->append_conf('postgresql.conf', "lockbox.access_log_max_query = '1MB'");
$sb1->reload;
$sb1->poll_query_until('postgres',
	q{SELECT current_setting('lockbox.access_log_max_query') = '1MB'});
my $long = 'x' x 1_200_000;
($out, $err) = as_eng($sb1,
	"SELECT /* sb1 long */ count(*) FROM invoices WHERE '$long' <> '';\n"
	  . "SELECT /* after long 1 */ count(*) FROM invoices;\n"
	  . "SELECT /* after long 2 */ count(*) FROM invoices;");
is($out, "2\n2\n2", 'sb1: a statement of 1.2 MB and two more in the same session run');
ok( $primary->poll_query_until($db,
		q{SELECT count(*) = 1 AND min(query_length) > 1200000 AND min(octet_length(query)) = 1048576
		         AND bool_and(query_sha256 IS NOT NULL)
		    FROM lockbox.access_log WHERE query LIKE '%/* sb1 long */%' AND node = 'sb1'}),
	'its record, longer than a forwarded chunk, is on the primary once, with the full length');
ok( $primary->poll_query_until($db,
		q{SELECT count(*) = 2 FROM lockbox.access_log WHERE query LIKE '%/* after long %' AND node = 'sb1'}),
	'and the statements after it too');
ok($sb1->poll_query_until($db, 'SELECT pending_bytes = 0 FROM lockbox.standby_backlog'),
	'the standby has nothing left to forward');

# --- lifecycle functions on a standby ------------------------------------------
my $ret;
($ret, $out, $err) = $sb1->psql($db, "\\set VERBOSITY verbose\nSET SESSION AUTHORIZATION sa_app; SELECT lockbox_approve($r1)");
like($err, qr/ERROR:  25006: lockbox cannot change requests, tenants or protected tables during recovery/,
	'sb1: lockbox_approve fails with 25006 and lockbox\'s message');
like($err, qr/HINT:  Call the function on the primary server\./, 'with a hint');
unlike($err, qr/INSERT|UPDATE|lockbox\.request|QUERY:/, 'and no internal statement');
for my $call ("lockbox_request('acme', 'reason long enough') FROM (SELECT set_config('session_authorization', 'sa_eng', false)) s",
	'lockbox_add_tenant(\'x\')',
	"lockbox_protect('secrets', tenant => 'acme')", 'lockbox_claim_notifications(1)',
	"lockbox_set_contact('sa_app', 'a\@b.c')")
{
	($ret, $out, $err) = $sb1->psql($db, "\\set VERBOSITY verbose\nSELECT $call");
	like($err, qr/ERROR:  25006: lockbox cannot change/, "sb1: $call fails with 25006");
}
is($sb1->safe_psql($db, 'SELECT ok FROM lockbox_verify_audit()'), 't',
	'sb1: lockbox_verify_audit works');

# --- the primary down: records wait, bounded; then forwarded once -----------------
$primary->stop('fast');
$sb1->append_conf('postgresql.conf', "lockbox.standby_backlog_max = '2kB'");
$sb1->reload;
my ($allowed, $refused) = (0, 0);
for my $i (1 .. 40)
{
	($out, $err) = as_eng($sb1, "SELECT /* offline $i */ count(*) FROM invoices");
	if ($out eq '2') { $allowed++; next; }
	$refused++;
	like($err, qr/ERROR:  53400: the standby's backlog of lockbox access records for the primary is full/,
		'past lockbox.standby_backlog_max the statement is refused with 53400');
	last;
}
ok($allowed >= 1 && $refused == 1, "with the primary down, $allowed statements ran, then the bound refused");
like( $sb1->safe_psql($db,
		q{SELECT pending_bytes >= 2048 AND pending_files >= 1 AND last_error IS NOT NULL
		      AND last_error LIKE '%connecting%' FROM lockbox.standby_backlog}),
	qr/^t$/, 'lockbox.standby_backlog shows the backlog and why');
$primary->start;
ok( $primary->poll_query_until($db,
		qq{SELECT count(DISTINCT query) = $allowed AND count(*) = $allowed FROM lockbox.access_log
		    WHERE query LIKE '%/* offline %' AND node = 'sb1'}),
	'the primary back, each statement that ran is forwarded exactly once');
ok($sb1->poll_query_until($db, 'SELECT pending_bytes = 0 FROM lockbox.standby_backlog'),
	'the backlog drains');
($out, $err) = as_eng($sb1, 'SELECT /* after drain */ count(*) FROM invoices');
is($out, '2', 'and statements run again');
$sb1->append_conf('postgresql.conf', "lockbox.standby_backlog_max = '256MB'");
$sb1->reload;

# --- a forwarder cannot speak for another node ----------------------------------
($ret, $out, $err) = $primary->psql($db,
	q{\set VERBOSITY verbose
SELECT lockbox.forward_access('sb2', '1.2.3', 0, NULL)}, extra_params => [ '-U', 'sb1' ]);
like($err, qr/ERROR:  42501: role "sb1" cannot forward lockbox access records of node "sb2"/,
	'a forwarder cannot hand in records of another node');
($ret, $out, $err) = $primary->psql($db, 'SELECT count(*) FROM invoices',
	extra_params => [ '-U', 'sb1' ]);
like($err, qr/permission denied for table invoices/, 'nor read data');

# --- a conninfo libpq cannot parse is refused, without echoing it ------------------
($ret, $out, $err) = $sb1->psql($db,
	q{ALTER SYSTEM SET lockbox.primary_conninfo = 'postgresql://sb1:s3cr%zz@localhost/'});
like($err, qr/lockbox\.primary_conninfo is not a valid connection string/,
	'a malformed conninfo is refused when it is set');
unlike($err, qr/s3cr/, 'and the refusal does not quote its password');

# a spool record as a standby's session writes it (CRC-32C over kind on)
sub crc32c
{
	my $crc = 0xFFFFFFFF;
	for my $b (unpack('C*', $_[0]))
	{
		$crc ^= $b;
		$crc = ($crc & 1) ? (($crc >> 1) ^ 0x82F63B78) : ($crc >> 1) for 1 .. 8;
	}
	return $crc ^ 0xFFFFFFFF;
}

# the installation of lockbox the records are of (1.7): the primary's
my $installation = $primary->safe_psql($db, 'SELECT spool_epoch FROM lockbox.installation');

sub record
{
	my ($query, $inst) = @_;
	my $body = join('', map { "$_\0" } ('sa_eng', 'sa_eng', 'SELECT', '', $query, ''))
	  . pack('q<', length $query) . pack('L<', 1) . "public.invoices\0" . pack('L<', 0);
	my $at = int((time() - 946684800) * 1e6);    # since 2000-01-01, in us
	my $tail = pack('C C S< l< l< q< Q<', 1, 1, 1, 4242, $inst // $installation, $at, 0) . $body;
	return pack('L< L< L<', 0x58424B4C, 12 + length $tail, crc32c($tail)) . $tail;
}

sub forward_as_sb1
{
	my ($file, $records) = @_;
	my ($r, $o, $e) = $primary->psql($db,
		"\\set VERBOSITY verbose\nSELECT lockbox.forward_access('sb1', '$file', 0, $records)",
		extra_params => [ '-U', 'sb1' ]);
	return ($o, $e);
}

sub spool_rows
{
	return $primary->safe_psql($db,
		"SELECT count(*) FROM lockbox.access_spool WHERE file = '$_[0]'");
}
($out, $err) = forward_as_sb1('1.2.90',
	"pg_catalog.convert_to(pg_catalog.repeat('a', 9 * 1024 * 1024 + 1), 'UTF8')");
like($err, qr/ERROR:  54000: lockbox access records too large/,
	'a forwarder cannot hand in more than a chunk and the largest record');
is(spool_rows('1.2.90'), '0', 'and nothing of the call is kept');
($out, $err) = forward_as_sb1('1.2.91',
	"'\\x" . unpack('H*', record("SELECT /* forged \xff\xfe */ 1")) . "'::bytea");
like($err, qr/ERROR:  22023: invalid lockbox access records/,
	'a record with text that is not UTF-8 is refused');
is($primary->safe_psql($db,
		q{SELECT count(*) FROM lockbox.audit_log WHERE detail->>'query' LIKE '%forged%'})
	  . spool_rows('1.2.91'),
	'00', 'and nothing of it gets into the audit');
# a record of another installation (one dropped since), or of none (spooled
# before 1.7) in an installation created afresh: refused, none audited
for my $inst ($installation == 1 ? 2 : 1, 0)
{
	($out, $err) = forward_as_sb1('1.2.91',
		"'\\x" . unpack('H*', record('SELECT /* another installation */ 1', $inst)) . "'::bytea");
	like($err, qr/ERROR:  55000: lockbox access records of node "sb1" in spool file "1\.2\.91" are of another installation of lockbox/,
		"a record of installation $inst is refused");
}
is($primary->safe_psql($db,
		q{SELECT count(*) FROM lockbox.audit_log WHERE detail->>'query' LIKE '%another installation%'})
	  . spool_rows('1.2.91'),
	'00', 'and nothing of them gets into the audit');
my $good = record('SELECT /* forged but valid */ 1');
($out, $err) = forward_as_sb1('1.2.91', "'\\x" . unpack('H*', $good) . "'::bytea");
is($out, length($good), 'the same record with valid text is taken (the record is well made)');
forward_as_sb1('1.2.91', 'NULL, true');
for my $i (1 .. 3)
{
	($out, $err) = forward_as_sb1("1.2.9$i$i", 'NULL');
	is($out, '0', "asking how far an unknown file got: 0 ($i)");
}
is($primary->safe_psql($db,
		q{SELECT count(*) FROM lockbox.access_spool WHERE file LIKE '1.2.9%'}),
	'0', 'asking makes no progress rows');

# --- a damaged record with records after it: the file stops, and says so ---------------
my $sb1_spool = $sb1->data_dir . '/lockbox_spool/'
  . $sb1->safe_psql($db, "SELECT oid FROM pg_database WHERE datname = '$db'");
mkdir $sb1_spool;
my $damaged = record('SELECT /* damaged */ 1');
substr($damaged, 50, 1) = 'Q';
my $after = record('SELECT /* after damage */ 1');
open(my $fh, '>', "$sb1_spool/99999.1.1") or die "could not write a spool file: $!";
print $fh $damaged . $after . ("\0" x 4096);
close($fh);
ok( $sb1->poll_query_until($db,
		q{SELECT last_error LIKE '%"99999.1.1": a damaged record at offset 0%'
		         AND pending_bytes >= } . length($damaged . $after)
		  . q{ FROM lockbox.standby_backlog}),
	'sb1: a spool file with a damaged record before others shows as an error and counts toward the bound');
is($primary->safe_psql($db,
		q{SELECT count(*) FROM lockbox.audit_log WHERE detail->>'query' LIKE '%damage%'}),
	'0', 'and the records after it are not dropped as a torn end (nor forwarded)');
unlink "$sb1_spool/99999.1.1";
ok($sb1->poll_query_until($db, 'SELECT pending_bytes = 0 FROM lockbox.standby_backlog'),
	'the file removed, the backlog is empty again');

# --- a wrong conninfo: another cluster's lockbox gets nothing -----------------------
my $other = PostgreSQL::Test::Cluster->new('other');
$other->init;
$other->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$other->start;
$other->safe_psql('postgres', "CREATE DATABASE $db");
$other->safe_psql($db, 'CREATE EXTENSION lockbox; CREATE ROLE sb1 LOGIN IN ROLE lockbox_forwarder');
$sb1->append_conf('postgresql.conf',
	"lockbox.primary_conninfo = 'host=" . $other->host . ' port=' . $other->port . " user=sb1'");
$sb1->reload;
($out) = as_eng($sb1, 'SELECT /* wrong primary */ count(*) FROM invoices');
is($out, '2', 'with the conninfo pointing at another cluster, the statement runs (spooled)');
ok( $sb1->poll_query_until($db,
		q{SELECT last_error LIKE '%system identifier%' AND pending_bytes > 0 FROM lockbox.standby_backlog}),
	'the standby refuses to forward to a server that is not its primary, and says why');
is($other->safe_psql($db, 'SELECT count(*) FROM lockbox.audit_log WHERE event IN (\'access\', \'refused\')'),
	'0', 'the other cluster got no record');
$other->stop('immediate');
$sb1->append_conf('postgresql.conf', "lockbox.primary_conninfo = '$forward user=sb1'");
$sb1->reload;
ok( $primary->poll_query_until($db,
		q{SELECT count(*) = 1 FROM lockbox.access_log WHERE query LIKE '%/* wrong primary */%' AND node = 'sb1'}),
	'the conninfo fixed, the record reaches the primary, once');

# --- a session's caches follow replay ---------------------------------------------
# A session on a standby that knew the protected tables before another table
# was protected on the primary sees the change once it is replayed: the new
# table is refused (and so recorded), not read as an unprotected one.
my $bg2 = $sb2->background_psql($db, extra_params => [ '-U', 'sa_eng' ], on_error_stop => 0);
is($bg2->query('SELECT /* cached */ count(*) FROM invoices'), '2',
	'an engineer session on sb2 knows the protected tables');
$primary->safe_psql($db, q{
CREATE TABLE notes (tenant text NOT NULL, note text);
INSERT INTO notes VALUES ('acme', 'a'), ('globex', 'g');
SELECT lockbox_protect('notes', tenant_column => 'tenant');
});
$primary->wait_for_catchup($sb1, 'replay');
$sb1->wait_for_catchup($sb2, 'replay', $primary->lsn('write'));
$bg2->query('SELECT /* newly protected */ count(*) FROM notes');
like($bg2->{stderr}, qr/no approved lockbox access to table "public\.notes"/,
	'the same session is refused the table protected since, once replayed');
ok( $primary->poll_query_until($db,
		q{SELECT count(*) = 1 FROM lockbox.access_log
		   WHERE query LIKE '%/* newly protected */%' AND node = 'sb2' AND outcome = 'refused'}),
	'and the refused attempt reaches the primary');
$bg2->quit;

# --- revocation ends the standby session -------------------------------------------
my $bg = $sb1->background_psql($db, extra_params => [ '-U', 'sa_eng' ], on_error_stop => 0);
is($bg->query('SELECT /* held */ count(*) FROM invoices'), '2', 'an engineer session on sb1');
my $bgpid = $bg->query('SELECT pg_backend_pid()');
$primary->safe_psql($db, "SET SESSION AUTHORIZATION sa_app; SELECT lockbox_revoke($r1, 'customer withdrew consent')");
$primary->wait_for_catchup($sb1, 'replay');
my $replayed = time();
ok( $sb1->poll_query_until($db, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $bgpid"),
	'the revocation on the primary ends the session on the standby');
my $took = time() - $replayed;
cmp_ok($took, '<', 2.0, sprintf('within 2 s of replay (%.2f s)', $took));
like(slurp_file($sb1->logfile), qr/FATAL:  terminating connection: lockbox ended this engineer's access/,
	'with lockbox\'s message');
$bg->quit;

# --- promotion -------------------------------------------------------------------
my $r2 = approved_request();
$primary->wait_for_catchup($sb1);
$primary->stop('fast');
for my $i (1 .. 3)
{
	($out) = as_eng($sb1, "SELECT /* held back $i */ count(*) FROM invoices");
	is($out, '2', "primary down: statement $i runs on sb1");
}
$sb1->promote;
ok( $sb1->poll_query_until($db,
		q{SELECT count(*) = 3 AND count(DISTINCT query) = 3 AND bool_and(node = 'sb1')
		    FROM lockbox.access_log WHERE query LIKE '%/* held back %'}),
	'after promotion the records sb1 held are written once, node sb1');
is( $sb1->safe_psql($db,
		q{SELECT count(*) FROM (SELECT query FROM lockbox.access_log
		   WHERE query LIKE '%/* offline %' OR query LIKE '%/* sb1 %' GROUP BY query HAVING count(*) > 1) d}),
	'0', 'the records forwarded before promotion are not repeated');
($out) = as_eng($sb1, 'SELECT /* promoted */ count(*) FROM invoices');
ok( $sb1->poll_query_until($db,
		q{SELECT count(*) = 1 FROM lockbox.access_log WHERE query LIKE '%/* promoted */%' AND node = 'primary'}),
	'statements on the promoted node are recorded by its worker');
ok( $sb1->poll_query_until($db,
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'lockbox worker' AND datname = current_database()}),
	'one worker serves the database on the new primary');
is($sb1->safe_psql($db, 'SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies');
my ($fret, $fout, $ferr) = $sb1->psql($db,
	q{SELECT lockbox.forward_access('sb1', '1.1.1', 0, NULL)}, extra_params => [ '-U', 'sb1' ]);
like($ferr, qr/lockbox node "sb1" is this server's own name/,
	'the promoted node takes no records forwarded under its own name');

$sb2->stop('immediate');
$sb1->stop;
done_testing();
