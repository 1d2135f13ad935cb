# Upgrading a running server from lockbox 1.0, through every released
# version (@releases below), to the current version, as a DBA would: the 1.0
# library and scripts run with real data, then each later release as released
# (library and scripts, a restart, ALTER EXTENSION lockbox UPDATE TO it, more
# data written by it), then the new package is installed (library, control
# file, scripts) and the server restarted, then ALTER EXTENSION lockbox
# UPDATE.
#
# The released versions are built from this repository's history and
# installed into a private copy of the PostgreSQL installation tree (the
# binaries are copied, everything else linked), so the system's installation
# is never touched.  The same tree then gets the current library and scripts.
#
# - 1.0, filled: requests in every state, decisions, notifications, an
#   engineer's audited reads, protected tables.
# - each later release: its library audits an engineer's statement through
#   its spool; the audit verifies.
# - New library, old objects: every entry point refuses with a clear message
#   and a hint to update (an engineer's statement on a protected table too:
#   fail closed); nothing is changed.
# - ALTER EXTENSION lockbox UPDATE: the extension's objects equal those of a
#   fresh install of the current version (compared object by object, with
#   their definitions and privileges); the audit verifies; the data is all
#   there, each release's statement in the access log; a new lifecycle runs,
#   and the engineer reads exactly the tenant's rows.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Path qw(make_path);
use Cwd qw(abs_path);
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;

my $root = abs_path(dirname(__FILE__) . '/../..');
my $sys_bin = `pg_config --bindir`;
chomp $sys_bin;
my $sys_lib = `pg_config --pkglibdir`;
chomp $sys_lib;
my $sys_share = `pg_config --sharedir`;
chomp $sys_share;

# --- the released versions, built from the history ----------------------------
# One line a release: its version, its commit, and what the upgrade from it
# must start from besides what every release gets (the step below: its
# library and scripts, the update to it, an engineer's statement audited
# through its spool, the audit verified).  A release's hooks run before its
# library is installed (before) or once its statement is audited (updated).
#
# All are built at once, one after the other in a process of their own
# (make -j2), while the test fills 1.0 and upgrades through the earlier ones;
# built($version) waits for one.  Only lockbox.so, the control file and the
# scripts are installed from them: the LLVM bitcode for JIT inlining, which
# PGXS also builds where PostgreSQL has LLVM, is not built, and the C is
# compiled without optimization or debug information (-O0 -g0, a quarter of
# the compiler's time), which changes nothing the test looks at.
my %before;           # each lockbox table's content, before the next update
my $audit_rows;       # the audit's rows, likewise
my $audit_rows_v1;    # the audit's rows written before 1.3 (hash format v1)
my @releases = (
	[ '1.0', 'ca64ae9' ],
	# delivery columns: a contact, an acknowledged notification
	[ '1.1', '69eb76a', updated => sub {
		sql(q{SELECT lockbox_set_contact('up_app', 'app@example.com')});
		sql(q{SELECT lockbox_ack_notification(id) FROM lockbox.notifications ORDER BY id LIMIT 1});
	} ],
	# the spool's progress keyed by node, the views rewritten
	[ '1.2', 'd2b71c5' ],
	# the audit log partitioned, hash format v2 for the rows it writes
	[ '1.3', 'a4decb9', before => sub { $audit_rows_v1 = $audit_rows } ],
	# the history indexes rebuilt
	[ '1.4', 'ffd4069' ],
	# the posture and access log views rewritten, statements with their parameters
	[ '1.5', '0e40a2b' ],
	# statements recorded in parts, requests updated in place
	[ '1.6', 'fc5d361' ],
);
my $tmp = PostgreSQL::Test::Utils::tempdir();
for my $r (@releases)
{
	my ($v, $commit) = @$r;
	make_path("$tmp/lockbox-$v");
	system_or_bail("git -c safe.directory='*' -C '$root' archive $commit | tar -x -C '$tmp/lockbox-$v'");
}
my $builder = fork();
BAIL_OUT("fork: $!") unless defined $builder;
if ($builder == 0)
{
	# each build's exit status in build-VERSION.rc, written once it is done
	{ exec('sh', '-c', join("\n",
		map {
			my $v = $_->[0];
			"make -s -j2 -C '$tmp/lockbox-$v' PG_CONFIG='$sys_bin/pg_config' with_llvm=no COPT='-O0 -g0'"
			  . " >'$tmp/build-$v.log' 2>&1; echo \$? >'$tmp/build-$v.rc.new';"
			  . " mv '$tmp/build-$v.rc.new' '$tmp/build-$v.rc'"
		} @releases)) };
	print STDERR "exec sh: $!\n";
	POSIX::_exit(127);
}

# the source tree of a released version, once its build is done
sub built
{
	my ($v) = @_;
	my $rc = "$tmp/build-$v.rc";
	my $deadline = time() + 10 * $PostgreSQL::Test::Utils::timeout_default;
	while (!-f $rc)
	{
		BAIL_OUT("the build of lockbox $v did not finish") if time() > $deadline;
		select(undef, undef, undef, 0.1);
	}
	diag("the build of lockbox $v failed:\n" . slurp_file("$tmp/build-$v.log"))
	  unless slurp_file($rc) =~ /^0$/m;
	return "$tmp/lockbox-$v";
}

# --- version 1.0 ----------------------------------------------------------------
my $src10 = built('1.0');
ok(-f "$src10/lockbox.so", "lockbox 1.0 ($releases[0][1]) builds");

# --- a private installation tree -------------------------------------------
# PostgreSQL finds its library and share directories relative to its own
# binary: bin/ holds copies, lib/ and share/ links to the system's files,
# except lockbox's.
my $inst = "$tmp/inst";
my $bindir = "$inst/lib/postgresql/15/bin";
my $libdir = "$inst/lib/postgresql/15/lib";
my $sharedir = "$inst/share/postgresql/15";
make_path($bindir, $libdir, "$sharedir/extension");
for my $b (qw(postgres initdb pg_ctl psql pg_dump pg_config))
{
	copy("$sys_bin/$b", "$bindir/$b") or BAIL_OUT("copy $b: $!");
	chmod 0755, "$bindir/$b";
}
for my $f (glob("$sys_lib/*"))
{
	next if $f =~ m{/lockbox\.so$};
	symlink($f, "$libdir/" . (split m{/}, $f)[-1]);
}
for my $f (glob("$sys_share/*"))
{
	my $name = (split m{/}, $f)[-1];
	next if $name eq 'extension';
	symlink($f, "$sharedir/$name");
}
for my $f (glob("$sys_share/extension/*"))
{
	next if $f =~ m{/lockbox[-.]};
	symlink($f, "$sharedir/extension/" . (split m{/}, $f)[-1]);
}

# put a lockbox build (library, control file, scripts) into the tree
sub install_lockbox
{
	my ($from) = @_;
	unlink glob("$sharedir/extension/lockbox*"), "$libdir/lockbox.so";
	copy("$from/lockbox.so", "$libdir/lockbox.so") or BAIL_OUT("copy lockbox.so: $!");
	copy("$from/lockbox.control", "$sharedir/extension/lockbox.control")
	  or BAIL_OUT("copy lockbox.control: $!");
	for my $s (glob("$from/sql/lockbox--*.sql"))
	{
		copy($s, "$sharedir/extension/" . (split m{/}, $s)[-1]) or BAIL_OUT("copy $s: $!");
	}
}
install_lockbox($src10);

my $node = PostgreSQL::Test::Cluster->new('upgrade',
	install_path => "$inst/lib/postgresql/15");
$node->init;
LockboxTest::setup($node, 'up');
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'lockbox'
lockbox.review_timeout = '1h'
});
$node->start;
is($node->safe_psql('postgres', 'SHOW data_directory') =~ m{^/} ? 1 : 0, 1,
	'the node runs from the private tree');

# A table's content, for "unchanged by the update".  Of lockbox.audit_log,
# the columns every version has: 1.3 makes its names text (rendered alike)
# and adds columns for the rows it writes, which the rows before leave NULL
# (hash_v1 aside, checked on its own).
sub table_md5
{
	my ($t) = @_;
	# (1.6 adds lockbox.request.final_state, derived: the columns before it)
	my $row = $t eq 'audit_log'
	  ? '(t.seq, t.at, t.session_user_name::text, t.actor::text, t.event, t.request_id,'
	  . ' t.tenant, t.detail, t.parents, t.hash)::text'
	  : $t eq 'request'
	  ? '(t.id, t.tenant, t.requester, t.reason, t.ticket, t.tables, t.access, t.duration,'
	  . ' t.state, t.created_at, t.deadline, t.reviewer, t.reviewed_at, t.approved_at,'
	  . ' t.access_ends_at, t.closed_at, t.close_reason)::text'
	  : 't::text';
	return "SELECT md5(string_agg($row, '|' ORDER BY $row)) FROM lockbox.$t t";
}

sql('CREATE DATABASE up', 'postgres');
sql(q{
CREATE EXTENSION lockbox;
CREATE ROLE up_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE up_rev IN ROLE lockbox_reviewer;
CREATE ROLE up_app IN ROLE lockbox_approver;
CREATE ROLE up_aud IN ROLE lockbox_auditor;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'up_app');
SELECT lockbox_add_tenant('globex', required_approvals => 1);
SELECT lockbox_add_approver('globex', 'up_app');
CREATE TABLE invoices (tenant text NOT NULL, amount int);
INSERT INTO invoices VALUES ('acme', 10), ('acme', 11), ('globex', 20);
SELECT lockbox_protect('invoices', tenant_column => 'tenant');
CREATE TABLE acme_notes (note text);
INSERT INTO acme_notes VALUES ('acme only');
SELECT lockbox_protect('acme_notes', tenant => 'acme');
});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'lockbox'}),
	'1.0', 'version 1.0 is installed');

# requests in every state
sub request
{
	my ($reason, $tenant) = @_;
	$tenant //= 'acme';
	return as_role('up_eng',
		"SELECT lockbox_request('$tenant', '$reason', tables => '{invoices}')");
}
my %id;
$id{pending_review} = request('stays pending review');
$id{pending_approval} = request('stays pending approval');
as_role('up_rev', "SELECT lockbox_approve($id{pending_approval})");
$id{approved} = request('stays approved');
as_role('up_rev', "SELECT lockbox_approve($id{approved})");
as_role('up_app', "SELECT lockbox_approve($id{approved})");
is(as_role('up_eng', 'SELECT count(*) FROM invoices'), '2',
	'1.0: the engineer reads acme\'s two rows');
$id{denied} = request('will be denied');
as_role('up_rev', "SELECT lockbox_deny($id{denied}, 'not enough detail given')");
$id{cancelled} = request('will be cancelled');
as_role('up_eng', "SELECT lockbox_cancel($id{cancelled})");
$id{closed} = request('will be closed');
as_role('up_rev', "SELECT lockbox_approve($id{closed})");
as_role('up_app', "SELECT lockbox_approve($id{closed})");
as_role('up_eng', "SELECT lockbox_close($id{closed}, 'done')");
$id{revoked} = request('will be revoked', 'globex');
as_role('up_rev', "SELECT lockbox_approve($id{revoked})");
as_role('up_app', "SELECT lockbox_approve($id{revoked})");
as_role('up_app', "SELECT lockbox_revoke($id{revoked}, 'customer changed their mind')");
$id{expired} = request('will expire');
sql("UPDATE lockbox.request SET deadline = now() - interval '1 second' WHERE id = $id{expired}");
sql('SELECT lockbox.run_deadlines()');
my $states = sql('SELECT string_agg(state, \',\' ORDER BY state) FROM lockbox.request');
is($states,
	'approved,cancelled,closed,denied,expired,pending_approval,pending_review,revoked',
	'1.0 holds requests in every state');

# what the update to the next version must keep: each table's content, and
# the audit, verified
sub keep
{
	my ($v) = @_;
	for my $t (qw(request decision notification audit_log tenant approver protected_table))
	{
		$before{$t} = sql(table_md5($t));
	}
	is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', "$v: the audit verifies");
	$audit_rows = sql('SELECT count(*) FROM lockbox.audit_log');
}
keep('1.0');

# --- each later release as released, then ALTER EXTENSION lockbox UPDATE TO it
# The upgrade a user of a release runs starts from what its library wrote:
# the engineers' statements it audited from its spool, and what its hooks add.
for my $release (@releases[ 1 .. $#releases ])
{
	my ($v, $commit, %hook) = @$release;
	$hook{before}->() if $hook{before};
	my $src = built($v);
	ok(-f "$src/lockbox.so", "lockbox $v ($commit) builds");
	$node->stop;
	install_lockbox($src);
	$node->start;
	sql("ALTER EXTENSION lockbox UPDATE TO '$v'");
	is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'lockbox'}),
		$v, "updated to $v as released");
	my $accesses = sql(q{SELECT count(*) FROM lockbox.audit_log WHERE event = 'access'});
	is(as_role('up_eng', "SELECT count(*) FROM invoices WHERE amount > 10 /* read under $v */"), '1',
		"$v: the engineer still reads under the approved request");
	ok($node->poll_query_until('up',
			qq{SELECT count(*) = $accesses + 1 FROM lockbox.audit_log WHERE event = 'access'}),
		"$v: the statement is in the audit, from the spool");
	$hook{updated}->() if $hook{updated};
	keep($v);
}

# A record 1.6 spooled and did not audit before the restart onto the new
# library (its worker's audit inserts are held back by a constraint, in a
# database of its own, whose catalog is not compared): the new library
# audits it once the database is updated (records before 1.7 carry no
# installation).
sql('CREATE DATABASE late', 'postgres');
sql(q{
CREATE EXTENSION lockbox;
CREATE TABLE t (tenant text);
GRANT SELECT ON t TO lockbox_engineer;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_protect('t', tenant_column => 'tenant');
ALTER TABLE lockbox.audit_log ADD CONSTRAINT hold_access
	CHECK (event NOT IN ('access', 'refused')) NOT VALID;
}, 'late');
my ($rc, $out, $err) = $node->psql('late', 'SET SESSION AUTHORIZATION up_eng; SELECT /* spooled by 1.6 */ count(*) FROM t');
like($err, qr/no approved lockbox access/, '1.6: an engineer is refused in another database');
is(sql(q{SELECT count(*) FROM lockbox.audit_log WHERE event = 'refused'}, 'late'), '0',
	'1.6: its record waits in the spool');

# --- the new package, then a restart ---------------------------------------
$node->stop;
install_lockbox($root);
$node->start;

($rc, $out, $err) = $node->psql('up',
	"SET SESSION AUTHORIZATION up_eng; SELECT lockbox_request('acme', 'before the update')");
like($err, qr/lockbox's objects in database "up" are version \Q$releases[-1][0]\E.*\n.*HINT:  Run ALTER EXTENSION lockbox UPDATE/s,
	'before the update, a lifecycle call is refused with a hint to update');
($rc, $out, $err) = $node->psql('up', 'SET SESSION AUTHORIZATION up_eng; SELECT count(*) FROM invoices');
isnt($rc, 0, 'an engineer\'s statement on a protected table is refused too (fail closed)');
like($err, qr/ALTER EXTENSION lockbox UPDATE/, '... with the same hint');
is(sql('SELECT count(*) FROM invoices'), '3', 'the owner reads as usual');
is(sql('SELECT count(*) FROM lockbox.request'), scalar(keys %id), 'nothing was changed');

sql('ALTER EXTENSION lockbox UPDATE');
my $current = `sed -n "s/^default_version *= *'\\([^']*\\)'.*/\\1/p" '$root/lockbox.control'`;
chomp $current;
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'lockbox'}),
	$current, "updated to $current");

# the record 1.6 spooled: audited by the updated database, once
sql('BEGIN; ALTER EXTENSION lockbox UPDATE; ALTER TABLE lockbox.audit_log DROP CONSTRAINT hold_access; COMMIT', 'late');
is(sql('SELECT spool_legacy FROM lockbox.installation', 'late'), 't',
	'an updated installation takes the records spooled before 1.7');
ok( $node->poll_query_until(
		'late', q{SELECT count(*) FROM lockbox.access_log
			 WHERE outcome = 'refused' AND query LIKE '%spooled by 1.6%'}, '1'),
	'the record 1.6 spooled before the restart is audited after the update');

# the extension's objects, each with its definition and privileges
my $catalog = q{
SELECT string_agg(d, E'\n' ORDER BY d) FROM (
  SELECT pg_describe_object(dep.classid, dep.objid, 0) || ' | ' ||
         CASE dep.classid
           WHEN 'pg_proc'::regclass THEN
             (SELECT pg_get_function_identity_arguments(p.oid) || ' ' ||
                     pg_get_function_result(p.oid) || ' ' || p.prosecdef::text || ' ' ||
                     p.provolatile::text || ' ' || p.proparallel::text || ' ' ||
                     coalesce(p.proacl::text, '') || ' ' ||
                     CASE WHEN p.prolang = (SELECT l.oid FROM pg_language l WHERE l.lanname = 'c') THEN p.prosrc
                          ELSE md5(pg_get_functiondef(p.oid)) END
                FROM pg_proc p WHERE p.oid = dep.objid)
           WHEN 'pg_class'::regclass THEN
             (SELECT c.relkind::text || ' ' || coalesce(c.relacl::text, '') || ' ' ||
                     coalesce(array_to_string(c.reloptions, ','), '') || ' ' ||
                     CASE WHEN c.relkind = 'v' THEN md5(pg_get_viewdef(c.oid))
                          ELSE coalesce((SELECT string_agg(a.attname || ':' ||
                                   format_type(a.atttypid, a.atttypmod) || ':' || a.attnotnull::text || ':' ||
                                   coalesce(pg_get_expr(ad.adbin, ad.adrelid), ''), ',' ORDER BY a.attnum)
                                 FROM pg_attribute a
                                 LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') ||
                               coalesce((SELECT string_agg(pg_get_indexdef(i.indexrelid), ';' ORDER BY 1)
                                 FROM pg_index i WHERE i.indrelid = c.oid), '') ||
                               coalesce((SELECT string_agg(conname || ' ' || pg_get_constraintdef(k.oid), ';' ORDER BY 1)
                                 FROM pg_constraint k WHERE k.conrelid = c.oid), '') ||
                               coalesce((SELECT string_agg(pg_get_triggerdef(t.oid), ';' ORDER BY 1)
                                 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), '')
                     END
                FROM pg_class c WHERE c.oid = dep.objid)
           WHEN 'pg_namespace'::regclass THEN
             (SELECT coalesce(n.nspacl::text, '') FROM pg_namespace n WHERE n.oid = dep.objid)
           ELSE ''
         END AS d
    FROM pg_depend dep
   WHERE dep.refclassid = 'pg_extension'::regclass
     AND dep.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'lockbox')
     AND dep.deptype = 'e') x};
sql('CREATE DATABASE fresh', 'postgres');
sql('CREATE EXTENSION lockbox', 'fresh');
my $upgraded = sql($catalog);
my $fresh = sql($catalog, 'fresh');
ok(length($fresh) > 1000, 'the catalog of a fresh install is described');
is($upgraded, $fresh, 'the upgraded extension\'s objects equal a fresh install\'s');
is(sql(q{SELECT string_agg(e.evtname || ' ' || e.evtenabled::text, ',') FROM pg_event_trigger e
	JOIN pg_depend d ON d.objid = e.oid AND d.deptype = 'e'}),
	sql(q{SELECT string_agg(e.evtname || ' ' || e.evtenabled::text, ',') FROM pg_event_trigger e
	JOIN pg_depend d ON d.objid = e.oid AND d.deptype = 'e'}, 'fresh'),
	'and so do its event triggers');

# the data is all there, and the audit verifies
for my $t (sort keys %before)
{
	is(sql(table_md5($t)),
		$before{$t}, "lockbox.$t is unchanged by the update");
}
is(sql('SELECT count(*) FROM lockbox.audit_log WHERE hash_v1'),
	$audit_rows_v1, 'the rows written before 1.3 keep their hash format (v1)');
is(sql('SELECT count(*) FROM lockbox.notification WHERE attempts <> 0 OR last_error IS NOT NULL
		OR next_attempt_at IS NOT NULL OR failed_at IS NOT NULL'),
	'0', 'the 1.0 notifications have no delivery attempts recorded');
for my $v (map { $_->[0] } @releases[ 1 .. $#releases ])
{
	is( as_role('up_aud', qq{SELECT count(*) FROM lockbox.access_log
			WHERE outcome = 'allowed' AND query LIKE '%amount > 10 /* read under $v */%'}),
		'1', "the statement audited under $v is in the access log");
}
is(sql(q{SELECT ok || ' ' || (rows_checked = (SELECT count(*) FROM lockbox.audit_log))
		|| ' ' || (rows_checked >= } . $audit_rows . q{) FROM lockbox_verify_audit()}),
	'true true true', 'the audit verifies after the update, every row of it');
is(as_role('up_aud', "SELECT state FROM lockbox.requests WHERE id = $id{revoked}"),
	'revoked', 'the views read the old requests');
is(sql(q{SELECT count(*) FROM lockbox.request r FULL JOIN lockbox.open_request o USING (id)
		WHERE (r.state IN ('pending_review', 'pending_approval', 'approved')) IS DISTINCT FROM (o.id IS NOT NULL)
		   OR (o.id IS NOT NULL AND o.due IS DISTINCT FROM
				CASE r.state WHEN 'approved' THEN r.access_ends_at ELSE r.deadline END)
		   OR r.final_state IS DISTINCT FROM
				CASE WHEN r.state NOT IN ('pending_review', 'pending_approval', 'approved') THEN r.state END}),
	'0', 'each open request is in lockbox.open_request with its next deadline, each settled one has its final_state');
is(as_role('up_rev', q{SELECT string_agg(state, ',' ORDER BY state) FROM lockbox.requests
		WHERE state IN ('pending_approval', 'denied')}),
	'denied,pending_approval', 'the views find old requests by state, open and settled');

# the story runs on the upgraded database
is(as_role('up_eng', 'SELECT count(*) FROM invoices'), '2',
	'the approved 1.0 request still grants its access');
my $new = request('after the update');
is(as_role('up_rev', "SELECT lockbox_approve($new)"), 'pending_approval', 'reviewed');
is(as_role('up_app', "SELECT lockbox_approve($new)"), 'approved', 'approved');
is(as_role('up_eng', "SELECT lockbox_close($id{approved}, 'done'); SELECT count(*) FROM invoices"),
	"closed\n2", 'the new request grants the same tenant\'s rows');
is(as_role('up_eng', "SELECT lockbox_close($new, 'done')"), 'closed', 'closed');
($rc, $out, $err) = $node->psql('up', 'SET SESSION AUTHORIZATION up_eng; SELECT count(*) FROM invoices');
like($err, qr/no approved lockbox access/, 'and then the engineer is refused again');
is(sql('SELECT ok FROM lockbox_verify_audit()'), 't', 'the audit verifies at the end');

# 1.3: the rows the update put into the default partition are moved into
# their month's partition by the worker, and the audit still verifies
ok($node->poll_query_until('up', 'SELECT count(*) = 0 FROM ONLY lockbox.audit_log_default'),
	'the worker moved the upgraded audit rows out of the default partition');
is(sql(q{SELECT count(*) FROM lockbox.audit_log a JOIN pg_class c ON c.oid = a.tableoid
		WHERE c.relname !~ '^audit_log_[0-9]{4}_[0-9]{2}$'}), '0', 'into monthly partitions');
is(sql(q{SELECT ok || ' ' || (rows_checked = (SELECT count(*) FROM lockbox.audit_log)) FROM lockbox_verify_audit()}),
	'true true', 'and the audit verifies, every row of it');

# A session that has called lockbox keeps checking the objects' version:
# recreated at an older version, they are refused in the same session.
($rc, $out, $err) = $node->psql('fresh', q{
	SELECT count(*) FROM lockbox_verify_audit();
	DROP EXTENSION lockbox;
	CREATE EXTENSION lockbox VERSION '1.3';
	SELECT count(*) FROM lockbox_verify_audit();});
like($err, qr/lockbox's objects in database "fresh" are version 1\.3/,
	'objects recreated at an older version are refused in a session that used the newer ones');

$node->stop;
waitpid($builder, 0);
done_testing();
