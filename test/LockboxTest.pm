# The helpers the TAP tests (test/t/*.pl) share: statements as the superuser,
# as a role, as the test's engineer in a session of their own, and a wait for
# rows of the access log.  prove finds this module with -I test (test/run.sh,
# and the same for a single file).
#
#   use LockboxTest;
#   LockboxTest::setup($node, 'mydb', engineer => 'my_eng');
#
# Each helper runs on the node and database given to setup; the database is
# also its last, optional argument, for a statement in another database.
package LockboxTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Utils;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(sql as_role as_eng wait_rows);

my ($node, $dbname, $engineer);

# the node and database of the helpers; engineer => ROLE, the role as_eng
# logs in as
sub setup
{
	my ($n, $d, %opt) = @_;
	($node, $dbname, $engineer) = ($n, $d, $opt{engineer});
	return;
}

# a statement as the superuser; its output (dies on an error)
sub sql
{
	die "sql(QUERY [, DATABASE])\n" unless @_ == 1 || @_ == 2;
	my ($q, $d) = @_;
	return $node->safe_psql($d // $dbname, $q);
}

# statements as $role (SET SESSION AUTHORIZATION); their output
sub as_role
{
	die "as_role(ROLE, QUERY [, DATABASE])\n" unless @_ == 2 || @_ == 3;
	my ($role, $q, $d) = @_;
	return sql("SET SESSION AUTHORIZATION $role; $q", $d);
}

# the engineer's statements, in a session of their own (logged in as the
# engineer, not a superuser's SET SESSION AUTHORIZATION), going on after an
# error: (stdout, stderr)
sub as_eng
{
	die "as_eng(QUERY [, DATABASE])\n" unless @_ == 1 || @_ == 2;
	my ($q, $d) = @_;
	die "LockboxTest::setup named no engineer\n" unless defined $engineer;
	my ($ret, $out, $err) = $node->psql($d // $dbname, $q,
		extra_params => [ '-U', $engineer, '-v', 'ON_ERROR_STOP=0' ]);
	return ($out, $err);
}

# wait until the access log holds $want rows matching $cond (the worker
# drains the spool into it), at most the tests' timeout; the count last seen
sub wait_rows
{
	my ($cond, $want, $d) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (1)
	{
		my $got = sql("SELECT count(*) FROM lockbox.access_log WHERE $cond", $d);
		return $got if $got == $want || time() > $deadline;
		usleep(100_000);
	}
}

1;
