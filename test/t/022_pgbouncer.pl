# Lockbox behind PgBouncer, as the README's section "Connection poolers"
# tells.  Skipped when pgbouncer is not installed (Debian package pgbouncer,
# which test/deps.sh installs).
#
# - an entry with user= makes every client that one role: an engineer
#   connecting through it is the pooler's role to PostgreSQL;
# - session pooling: when the engineer's access is revoked, the next
#   statement fails with the ended session's FATAL and the connection is lost;
# - transaction pooling: the next statement runs on a new server connection
#   and is refused by lockbox there; the client stays connected;
# - LISTEN lockbox gets the NOTIFY on a direct connection, not through
#   transaction pooling; lockbox_claim_notifications and
#   lockbox_ack_notification work through it;
# - a SET ROLE through a transaction pool stays on the server connection for
#   the next client; the shared role, a member of an engineer, is an engineer
#   to lockbox.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use IPC::Run;
use Time::HiRes qw(usleep);

my ($pgbouncer) = grep { -x $_ } map { "$_/pgbouncer" } (split(/:/, $ENV{PATH}), '/usr/sbin');
plan skip_all => 'pgbouncer is not installed (Debian package pgbouncer)' unless $pgbouncer;

my $node = PostgreSQL::Test::Cluster->new('pgbouncer');
LockboxTest::setup($node, 'shop');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql(
	'shop', q{
CREATE EXTENSION lockbox;
CREATE ROLE pb_eng LOGIN IN ROLE lockbox_engineer;
CREATE ROLE pb_rev LOGIN IN ROLE lockbox_reviewer;
CREATE ROLE pb_app LOGIN IN ROLE lockbox_approver;
CREATE ROLE pb_aud LOGIN IN ROLE lockbox_auditor;
CREATE ROLE pb_pooler LOGIN;
CREATE TABLE invoices (id int PRIMARY KEY, tenant text NOT NULL, total numeric);
INSERT INTO invoices VALUES (1, 'acme', 10), (2, 'acme', 11), (3, 'globex', 20);
GRANT SELECT ON invoices TO pb_pooler;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'pb_app');
SELECT lockbox_protect('invoices', tenant_column => 'tenant');
});

# --- pgbouncer, on a unix socket of its own --------------------------------
my $sockdir = PostgreSQL::Test::Utils::tempdir_short();
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $dir = $node->basedir;
my $server = 'host=' . $node->host . ' port=' . $node->port . ' dbname=shop';
append_to_file(
	"$dir/pgbouncer.ini", qq{
[databases]
shop_session = $server pool_mode=session
shop_tx = $server pool_mode=transaction
shop_shared = $server user=pb_pooler pool_mode=transaction pool_size=1

[pgbouncer]
listen_addr =
listen_port = $port
unix_socket_dir = $sockdir
auth_type = trust
auth_file = $dir/userlist.txt
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
default_pool_size = 2
});
append_to_file("$dir/userlist.txt", join('', map { qq{"$_" ""\n} } qw(pb_eng pb_rev pb_app pb_aud pb_pooler)));
my ($pgb_out, $pgb_err) = ('', '');
my $pgb = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ], '>', \$pgb_out, '2>', \$pgb_err);
my $waited = 0;
until (-S "$sockdir/.s.PGSQL.$port")
{
	die "pgbouncer did not start: $pgb_err" if $waited++ > 10 * $PostgreSQL::Test::Utils::timeout_default;
	usleep(100_000);
}

# A psql session kept open, through pgbouncer or straight to the server.
my $marks = 0;

sub open_session
{
	my ($connstr) = @_;
	my $s = { in => '', out => '', err => '' };
	$s->{h} = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $connstr ],
		'<', \$s->{in}, '>', \$s->{out}, '2>', \$s->{err},
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return $s;
}
sub via_pgbouncer { open_session("host=$sockdir port=$port dbname=$_[0] user=$_[1]") }
sub direct { open_session($node->connstr('shop') . " user=$_[0]") }

# Run $sql in the session: (stdout, stderr, whether psql is still there).
sub query
{
	my ($s, $sql) = @_;
	my $mark = 'query done ' . $marks++;
	@$s{qw(out err)} = ('', '');
	$s->{in} .= "$sql\n;\n\\echo '$mark'\n";
	while ($s->{out} !~ /$mark\n/ && $s->{h}->pumpable)
	{
		eval { $s->{h}->pump; 1 } or last;
	}
	my $alive = $s->{h}->pumpable;
	$s->{h}->finish unless $alive;
	(my $out = $s->{out}) =~ s/\Q$mark\E\n//;
	chomp $out;
	return ($out, $s->{err}, $alive);
}

sub quit
{
	my ($s) = @_;
	return unless $s->{h}->pumpable;
	$s->{in} .= "\\q\n";
	$s->{h}->finish;
}

sub grant_access
{
	my $id = as_role('pb_eng',
		q{SELECT lockbox_request('acme', 'customer asked us to look', duration => '1 hour')});
	as_role('pb_rev', "SELECT lockbox_approve($id)");
	as_role('pb_app', "SELECT lockbox_approve($id)") eq 'approved' or die "request $id not approved";
	return $id;
}

sub revoke_and_wait
{
	my ($id) = @_;
	as_role('pb_app', "SELECT lockbox_revoke($id, 'revoked in the pgbouncer test')");
	$node->poll_query_until('shop',
		q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'pb_eng'}, '0')
	  or die 'the engineer\'s server connections were not ended';
}

# --- identity -------------------------------------------------------------
my $s = via_pgbouncer('shop_shared', 'pb_eng');
is((query($s, 'SELECT current_user, session_user'))[0], 'pb_pooler|pb_pooler',
	'through an entry with user=, the engineer is the pooler\'s role to PostgreSQL');
is((query($s, 'SELECT count(*) FROM invoices'))[0], '3',
	'and reads what that role may read: every tenant\'s rows');
quit($s);

# --- session pooling: the session ends ------------------------------------
my $id = grant_access();
$s = via_pgbouncer('shop_session', 'pb_eng');
is((query($s, 'SELECT count(*) FROM invoices'))[0], '2', 'session pooling: the engineer reads acme');
revoke_and_wait($id);
my ($out, $err, $alive) = query($s, 'SELECT count(*) FROM invoices');
like($err, qr/FATAL:  terminating connection.*\n(.*\n)*FATAL:  server conn crashed\?/,
	'after the revocation, the next statement gets the ended session\'s FATAL, then PgBouncer\'s');
ok(!$alive, 'and the client loses its connection');

# --- transaction pooling: a new server connection, refused ----------------
$id = grant_access();
$s = via_pgbouncer('shop_tx', 'pb_eng');
is((query($s, 'SELECT count(*) FROM invoices'))[0], '2', 'transaction pooling: the engineer reads acme');
revoke_and_wait($id);
($out, $err, $alive) = query($s, 'SELECT count(*) FROM invoices');
like($err, qr/ERROR:  no approved lockbox access to table "public\.invoices"/,
	'after the revocation, the next statement is refused by lockbox');
unlike($err, qr/FATAL/, 'without a connection error');
is((query($s, 'SELECT 1'))[0], '1', 'the client is still connected');
quit($s);

# --- notifications ----------------------------------------------------------
my $listen_direct = direct('pb_aud');
my $listen_tx = via_pgbouncer('shop_tx', 'pb_aud');
query($_, 'LISTEN lockbox') for ($listen_direct, $listen_tx);
$id = as_role('pb_eng', q{SELECT lockbox_request('acme', 'customer asked us to look')});
as_role('pb_rev', "SELECT lockbox_approve($id)");
my $heard = '';
for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
{
	$heard .= (query($listen_direct, 'SELECT 1'))[0];
	last if $heard =~ /Asynchronous notification "lockbox"/;
	usleep(100_000);
}
like($heard, qr/Asynchronous notification "lockbox" with payload ".*"request_id": $id/,
	'LISTEN lockbox on a direct connection gets the NOTIFY');
($out) = query($listen_tx, 'SELECT 1');
unlike($out, qr/Asynchronous notification/, 'LISTEN lockbox through transaction pooling gets nothing');
quit($_) for ($listen_direct, $listen_tx);

# (the server connection the pool hands this client may be the one that ran
# the LISTEN above: a NOTIFY queued for it is printed here, before the result)
sub without_notifications { join("\n", grep { !/^Asynchronous notification/ } split /\n/, shift // '') }
$s = via_pgbouncer('shop_tx', 'pb_aud');
my $ids = without_notifications((query($s, 'SELECT string_agg(id::text, \',\') FROM lockbox_claim_notifications(100)'))[0]);
like($ids, qr/^\d+(,\d+)*$/, 'lockbox_claim_notifications through transaction pooling');
is(without_notifications((query($s, "SELECT bool_and(lockbox_ack_notification(n)) FROM unnest('{$ids}'::bigint[]) n"))[0]),
	't', 'lockbox_ack_notification through transaction pooling');
is($node->safe_psql('shop', 'SELECT count(*) FROM lockbox.notifications WHERE delivered_at IS NULL'),
	'0', 'every notification is marked delivered');
quit($s);

# --- SET ROLE through a shared role ------------------------------------------
$node->safe_psql('shop', 'GRANT pb_eng TO pb_pooler');
$s = via_pgbouncer('shop_shared', 'pb_eng');
($out, $err) = query($s, 'SELECT count(*) FROM invoices');
like($err, qr/no approved lockbox access to table "public\.invoices"/,
	'a shared role that is a member of an engineer is an engineer to lockbox');
query($s, 'SET ROLE pb_eng');
quit($s);
$s = via_pgbouncer('shop_shared', 'pb_rev');
is((query($s, 'SELECT current_user, session_user'))[0], 'pb_eng|pb_pooler',
	'a SET ROLE stays on the server connection for the next client of a transaction pool');
quit($s);

$pgb->signal('INT');
$pgb->finish;
$node->stop;
done_testing();
