# lockbox-notify delivers notifications to a real SMTP server (aiosmtpd) and
# a real HTTP receiver that verifies the webhook signature (README
# "Delivery"; test/notify/receivers.py):
#
#   - a request: the reviewers' e-mail; reviewed: one e-mail per approver
#     with the right recipients (a group role reaches its members) and
#     content, and a signed webhook per approver notification;
#   - approvers hear when access they approved starts and ends;
#   - an invalid address (SMTP 550): failed for good, with its error, in
#     lockbox.notifications and lockbox.stats;
#   - the SMTP server down, then up: delivered once, after retries;
#   - a webhook answering 500, then too slowly (timeout), then 200:
#     delivered after retries;
#   - the notifier killed mid-batch: nothing lost, resent only under the
#     same idempotency key;
#   - two notifiers at once: no message twice.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use LockboxTest;
use File::Basename qw(dirname);
use Cwd qw(abs_path);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(usleep);

my $root = abs_path(dirname(__FILE__) . '/../..');
my $python = '/usr/bin/python3';
my $receivers = "$root/test/notify/receivers.py";
my $bindir = `pg_config --bindir`;
chomp $bindir;
my $notifier = -x "$bindir/lockbox-notify" ? "$bindir/lockbox-notify"
  : "$root/src/notify/lockbox-notify";
plan skip_all => "lockbox-notify is not built ($notifier)" unless -x $notifier;
plan skip_all => 'python3-aiosmtpd is missing'
  unless system($python, '-c', 'import aiosmtpd') == 0;

my $node = PostgreSQL::Test::Cluster->new('delivery');
LockboxTest::setup($node, 'nd');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'lockbox'");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE nd');
$node->safe_psql(
	'nd', q{
CREATE EXTENSION lockbox;
CREATE ROLE nd_eng IN ROLE lockbox_engineer;
CREATE ROLE nd_rev1 IN ROLE lockbox_reviewer;
CREATE ROLE nd_rev2 IN ROLE lockbox_reviewer;
CREATE ROLE nd_app1 IN ROLE lockbox_approver;
CREATE ROLE nd_admins IN ROLE lockbox_approver;
CREATE ROLE nd_bob IN ROLE nd_admins;
CREATE ROLE nd_carol IN ROLE nd_admins;
CREATE ROLE nd_notify LOGIN IN ROLE lockbox_auditor;
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_approver('acme', 'nd_app1');
SELECT lockbox_add_approver('acme', 'nd_admins');
CREATE TABLE acme_data (tenant text);
SELECT lockbox_protect('acme_data', tenant_column => 'tenant');
SELECT lockbox_set_contact('nd_eng', 'erin@operator.example');
SELECT lockbox_set_contact('nd_rev1', 'rita@operator.example');
SELECT lockbox_set_contact('nd_rev2', 'rob@operator.example, rob.pager@operator.example');
SELECT lockbox_set_contact('nd_app1', 'ada@acme.example');
SELECT lockbox_set_contact('nd_bob', 'bob@acme.example');
SELECT lockbox_set_contact('nd_carol', 'carol@acme.example');
});

# --- the receivers -------------------------------------------------------------
my $dir = PostgreSQL::Test::Utils::tempdir();
my $smtp_port = PostgreSQL::Test::Cluster::get_free_port();
my $http_port = PostgreSQL::Test::Cluster::get_free_port();
my $secret = 'acme-webhook-secret-0123456789';
$node->safe_psql('nd',
	"SELECT lockbox_set_webhook('acme', 'http://127.0.0.1:$http_port/lockbox')");

# start a process in the background, its output to a file; returns its pid
sub spawn
{
	my ($log, @cmd) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDOUT, '>>', $log) or die;
		open(STDERR, '>&', \*STDOUT) or die;
		exec(@cmd) or die "exec $cmd[0]: $!";
	}
	return $pid;
}

sub stop
{
	my ($pid, $sig) = @_;
	kill($sig // 'TERM', $pid);
	waitpid($pid, 0);
}

sub wait_until
{
	my ($what, $cond, $seconds) = @_;
	my $deadline = time() + ($seconds // 40);
	while (time() < $deadline)
	{
		return 1 if $cond->();
		usleep(100_000);
	}
	diag("timed out waiting: $what");
	return 0;
}

sub start_smtp
{
	my $pid = spawn("$dir/smtp.out", $python, $receivers, 'smtp',
		'--port', $smtp_port, '--dir', $dir);
	wait_until('the SMTP server listens',
		sub { -f "$dir/smtp.out" && slurp_file("$dir/smtp.out") =~ /listening/ });
	return $pid;
}
my $smtp = start_smtp();
my $http = spawn("$dir/http.out", $python, $receivers, 'http',
	'--port', $http_port, '--dir', $dir, '--secret', $secret);
wait_until('the HTTP receiver listens',
	sub { -f "$dir/http.out" && slurp_file("$dir/http.out") =~ /listening/ });

sub lines
{
	my ($file) = @_;
	return () unless -f $file;
	return split /\n/, slurp_file($file);
}

# the e-mails received: { id, rcpt, text }
sub mails
{
	my @m;
	for my $f (sort { ($a =~ /(\d+)\.eml$/)[0] <=> ($b =~ /(\d+)\.eml$/)[0] }
		glob("$dir/mail/*.eml"))
	{
		my $text = slurp_file($f);
		my ($id) = $text =~ /^Message-ID: (\S+)\r?$/m;
		push @m, { id => $id, text => $text, file => $f };
	}
	return @m;
}

sub mails_for_request
{
	my ($r) = @_;
	return grep { $_->{text} =~ /^X-Lockbox-Request: $r\r?$/m } mails();
}

sub hooks
{
	return map { my @f = split / /; { id => $f[1], valid => $f[2], event => $f[3] } }
	  lines("$dir/http.log");
}

# --- the notifier ----------------------------------------------------------------
my $conninfo = sprintf('host=%s port=%d dbname=nd user=nd_notify', $node->host, $node->port);
open(my $cf, '>', "$dir/notify.conf") or die;
print $cf <<"EOC";
# test configuration
conninfo = '$conninfo'
smtp_url = smtp://127.0.0.1:$smtp_port
smtp_tls = off
from = lockbox\@operator.example
webhook_secret.acme = '$secret'
timeout = 3
connect_timeout = 1
batch = 3
lease = 12
poll_interval = 1
max_attempts = 20
retry_base = 1
retry_max = 2
EOC
close $cf;

# (lease: at least a batch at its slowest, batch * (timeout + connect_timeout),
# or the notifier warns; and no longer, as section 7 waits for it to run out)
my $nlog = "$dir/notify.log";
sub start_notifier
{
	my ($log) = @_;
	return spawn($log // $nlog, $notifier, '--config', "$dir/notify.conf", '--verbose');
}
my $n1 = start_notifier();

sub all_settled
{
	my ($where) = @_;
	$where //= 'true';
	return $node->safe_psql('nd',
		"SELECT count(*) FROM lockbox.notifications WHERE delivered_at IS NULL AND failed_at IS NULL AND $where"
	) eq '0';
}

# --- 1. a request: the reviewers' e-mail -----------------------------------------
my $r1 = as_role('nd_eng',
	q{SELECT lockbox_request('acme', 'Invoice totals differ from the ledger', ticket => 'SUP-4711')});
ok(wait_until('the reviewers\' e-mail', sub { mails_for_request($r1) >= 1 }),
	'the reviewers are e-mailed about the new request');
my ($rev_mail) = mails_for_request($r1);
like($rev_mail->{text}, qr/^To: (?=.*rita\@operator\.example)(?=.*rob\@operator\.example)(?=.*rob\.pager\@operator\.example).*$/m,
	'one e-mail to every reviewer\'s addresses');
like($rev_mail->{text}, qr/^Subject: \[lockbox\] acme: request $r1 awaits review\r?$/m,
	'its subject names the tenant and the request');
like($rev_mail->{text}, qr/^Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r?$/m, 'it has a Date');
like($rev_mail->{text}, qr/^Message-ID: <lockbox\.nd\.\d+\.\d+\@operator\.example>\r?$/m,
	'it has a Message-ID, its idempotency key');
like($rev_mail->{text}, qr/SELECT lockbox_approve\($r1\);/, 'it shows the SQL to approve');
like($rev_mail->{text}, qr/Ticket: +SUP-4711/, 'it shows the ticket');

# --- 2. reviewed: one e-mail per approver, a signed webhook each ------------------
as_role('nd_rev1', "SELECT lockbox_approve($r1)");
ok( wait_until('the approvers\' e-mails', sub { mails_for_request($r1) >= 3 }),
	'the approvers are e-mailed');
my @app = grep { $_->{text} =~ /needs your approval/ } mails_for_request($r1);
is(scalar(@app), 2, 'one e-mail per approver role');
my ($to_ada) = grep { $_->{text} =~ /^To: ada\@acme\.example\r?$/m } @app;
my ($to_admins) = grep { $_->{text} =~ /^To: (?=.*bob\@acme\.example)(?=.*carol\@acme\.example).*$/m } @app;
ok($to_ada, 'approver nd_app1 gets its own e-mail');
ok($to_admins, 'group role nd_admins reaches its members bob and carol in one e-mail');
like($to_ada->{text},
	qr/Request: +$r1\b.*Tenant: +acme.*State: +pending_approval.*Requester: +nd_eng.*Reason: +Invoice totals differ from the ledger.*Tables: +public\.acme_data.*Access: +read.*Duration: +04:00:00.*Deadline: +\d{4}-.*Reviewed by: +nd_rev1.*Approved by: +\(nobody yet\)/s,
	'the e-mail says who asks for what, why, for how long, until when');
like($to_ada->{text}, qr/SELECT lockbox_approve\($r1\);.*SELECT lockbox_deny\($r1, 'the reason'\);/s,
	'the e-mail shows the exact SQL to approve or deny');
like($to_ada->{text}, qr/^Subject: \[lockbox\] acme: request $r1 needs your approval\r?$/m,
	'its subject names the tenant and the request');
ok(wait_until('the webhooks', sub { grep({ $_->{event} eq 'approval_requested' } hooks()) >= 2 }),
	'the tenant\'s webhook receives the approvers\' notifications');
is(scalar(grep { $_->{valid} ne 'valid' } hooks()), 0,
	'every webhook signature verifies (HMAC-SHA256 over timestamp and body)');
my ($hook) = grep { slurp_file($_) =~ /approval_requested/ } glob("$dir/hooks/*.json");
like(slurp_file($hook), qr/"approve_sql": "SELECT lockbox_approve\($r1\);"/,
	'the webhook body carries the SQL to approve');
like(slurp_file($hook), qr/"request": \{.*"tenant": "acme"/, 'and the request');

# --- 3. approvers hear when access they approved starts and ends ------------------
as_role('nd_app1', "SELECT lockbox_approve($r1)");
ok(wait_until('access_started', sub { grep { $_->{text} =~ /access under request $r1 has started/ } mails() }),
	'the approver hears that the access started');
as_role('nd_eng', "SELECT lockbox_close($r1, 'fixed')");
ok(wait_until('access_ended', sub { grep { $_->{text} =~ /access under request $r1 has ended \(closed, resolved\)/ } mails() }),
	'the approver hears that the access ended');
my ($started) = grep { $_->{text} =~ /has started/ } mails();
like($started->{text}, qr/^To: ada\@acme\.example\r?$/m, 'told to the approver who approved');
like($started->{text}, qr/Approved by: +nd_app1/, 'naming who approved');
ok(wait_until('all delivered', sub { all_settled() }), 'every notification is delivered');
is($node->safe_psql('nd', 'SELECT count(*) FROM lockbox.notifications WHERE failed_at IS NOT NULL'),
	'0', 'none failed');

# --- 4. an invalid address: failed for good, visibly -----------------------------
$node->safe_psql('nd', q{SELECT lockbox_set_contact('nd_rev2', 'reject.rob@operator.example')});
$node->safe_psql('nd', q{SELECT lockbox_set_contact('nd_rev1', NULL)});
my $r2 = as_role('nd_eng', q{SELECT lockbox_request('acme', 'Second look at the invoice totals')});
ok(wait_until('the failure', sub { all_settled("request_id = $r2") }), 'the reviewers\' notification is settled');
like(
	$node->safe_psql('nd',
		"SELECT attempts || ' ' || last_error FROM lockbox.notifications WHERE request_id = $r2 AND failed_at IS NOT NULL"),
	qr/^1 .*550/,
	'a refused address fails the notification at once, with the server\'s answer');
is($node->safe_psql('nd', 'SELECT notifications_failed FROM lockbox.stats'), '1',
	'lockbox.stats counts it');
like(slurp_file($nlog), qr/notification \d+ \(review_requested, request $r2\) failed for good after 1 attempt: .*550/,
	'the log says so');
$node->safe_psql('nd', q{SELECT lockbox_set_contact('nd_rev2', 'rob@operator.example')});

# --- 5. the SMTP server down, then up: delivered once, after retries ---------------
stop($smtp);
my $r3 = as_role('nd_eng', q{SELECT lockbox_request('acme', 'Export job fails for this tenant')});
ok( wait_until('retries',
		sub { $node->safe_psql('nd', "SELECT max(attempts) FROM lockbox.notifications WHERE request_id = $r3") >= 2 }),
	'with the SMTP server down, the notifier retries');
like($node->safe_psql('nd', "SELECT last_error FROM lockbox.notifications WHERE request_id = $r3"),
	qr/connect/i, 'the last error is kept');
$smtp = start_smtp();
ok(wait_until('delivered after the restart', sub { all_settled("request_id = $r3") }),
	'once the SMTP server is up, the notification is delivered');
is(scalar(mails_for_request($r3)), 1, 'exactly once');
is($node->safe_psql('nd', "SELECT delivered_at IS NOT NULL FROM lockbox.notifications WHERE request_id = $r3"),
	't', 'and acknowledged');
like(slurp_file($nlog), qr/request $r3\): attempt 1 of 20 failed, next in 1 s: e-mail/,
	'the log shows the failed attempts');

# --- 6. a webhook answering 500, then 200 -------------------------------------------
append_to_file("$dir/http.mode", "fail\n");
as_role('nd_rev2', "SELECT lockbox_approve($r3)");
ok( wait_until('webhook retries',
		sub { $node->safe_psql('nd',
				"SELECT count(*) FROM lockbox.notifications WHERE request_id = $r3 AND attempts >= 2 AND last_error LIKE '%HTTP 500%'") >= 1 }),
	'a webhook answering 500 is retried');
# a slow endpoint: past the notifier's timeout (3 s), the attempt fails
unlink("$dir/http.mode");
append_to_file("$dir/http.mode", "slow 5\n");
ok( wait_until('a timeout',
		sub { $node->safe_psql('nd',
				"SELECT count(*) FROM lockbox.notifications WHERE request_id = $r3 AND last_error ~* 'timed? ?out'") >= 1 }),
	'a webhook slower than the timeout is retried');
unlink("$dir/http.mode");
ok(wait_until('webhook delivered', sub { all_settled("request_id = $r3") }),
	'delivered once the endpoint accepts');
like(slurp_file($nlog), qr/webhook http:\S+: HTTP 500/, 'the log shows the 500');
like(slurp_file($nlog), qr/webhook http:\S+: Operation timed out/, 'and the timeout');

# --- 7. the notifier killed mid-batch: nothing lost ---------------------------------
append_to_file("$dir/http.mode", "slow 0.5\n");
my @before = hooks();
my @kreq;
for my $i (1 .. 4)
{
	my $r = as_role('nd_eng', "SELECT lockbox_request('acme', 'Killed notifier request number $i')");
	as_role('nd_rev2', "SELECT lockbox_approve($r)");
	push @kreq, $r;
}
my $klist = join(',', @kreq);
ok(wait_until('some delivered', sub { hooks() > @before }), 'the batch is being delivered');
stop($n1, 'KILL');
my $undelivered = $node->safe_psql('nd',
	"SELECT count(*) FROM lockbox.notifications WHERE request_id IN ($klist) AND delivered_at IS NULL");
ok($undelivered > 0, "the notifier was killed mid-batch ($undelivered notifications undelivered)");
unlink("$dir/http.mode");
$n1 = start_notifier();
ok(wait_until('all delivered after the restart', sub { all_settled("request_id IN ($klist)") }),
	'after a restart every notification is delivered (once its claim\'s lease ran out)');
is($node->safe_psql('nd',
		"SELECT count(*) FROM lockbox.notifications WHERE request_id IN ($klist) AND failed_at IS NOT NULL"),
	'0', 'none failed');
my %want_keys = map { $_ => 1 } split /\n/, $node->safe_psql('nd',
	"SELECT format('lockbox.nd.%s.%s', id, (extract(epoch FROM created_at) * 1000000)::int8) FROM lockbox.notifications WHERE request_id IN ($klist) AND event = 'approval_requested'");
my %got = map { $_->{id} => 1 } grep { $want_keys{ $_->{id} } } hooks();
is(scalar(keys %got), scalar(keys %want_keys), 'every webhook of the batch arrived (no loss)');
my %mail_keys = map { ($_->{id} =~ /<(.*)\@/)[0] => 1 } mails();
my @lost = grep { !$mail_keys{$_} } keys %want_keys;
is(scalar(@lost), 0, 'every e-mail of the batch arrived (no loss)');

# --- 8. two notifiers at once: no duplicates -------------------------------------------
stop($n1);
my @mails_before = mails();
$node->safe_psql('nd', q{
	SET SESSION AUTHORIZATION nd_eng;
	SELECT lockbox_request('acme', 'Parallel notifiers request ' || i) FROM generate_series(1, 40) i});
$n1 = start_notifier("$dir/notify1.log");
my $n2 = start_notifier("$dir/notify2.log");
ok(wait_until('all delivered by two notifiers', sub { all_settled() }), 'two notifiers deliver everything');
my @new = @{ [ mails() ] }[ scalar(@mails_before) .. scalar(mails()) - 1 ];
my %seen;
$seen{ $_->{id} }++ for @new;
is(scalar(@new), 40, '40 e-mails for 40 requests');
is(scalar(grep { $seen{$_} > 1 } keys %seen), 0, 'no message twice');
my $by1 = () = slurp_file("$dir/notify1.log") =~ /delivered:/g;
my $by2 = () = slurp_file("$dir/notify2.log") =~ /delivered:/g;
ok($by1 > 0 && $by2 > 0, "both notifiers delivered ($by1 and $by2)");

# --- 9. the database restarting ----------------------------------------------------
$node->restart;
my $r9 = as_role('nd_eng', q{SELECT lockbox_request('acme', 'After the database restarted')});
ok(wait_until('delivered after a database restart', sub { all_settled("request_id = $r9") && mails_for_request($r9) == 1 }),
	'after the database restarts, the notifiers reconnect and deliver');
like(slurp_file("$dir/notify1.log") . slurp_file("$dir/notify2.log"),
	qr/connection to the database lost/, 'the log says the connection was lost');

stop($n1);
stop($n2);
like(slurp_file("$dir/notify1.log"), qr/stopped$/m, 'SIGTERM stops a notifier cleanly');
stop($smtp);
stop($http);
done_testing();
