/*
 * faketime_waits.c: preloaded ahead of libfaketime into a throwaway server
 * that test/cluster.sh starts at a fake instant (test/cluster.sh start --at),
 * so that every server process reads the fake clock.
 *
 * libfaketime wraps the calls that wait (select, poll, epoll_wait, nanosleep
 * ...) to scale their timeouts, and reads the real clock while inside them.
 * PostgreSQL 15's postmaster does its work in signal handlers that interrupt
 * its select(): there the clock is real, and so it stays, for their whole
 * life, in the processes it starts there (the background workers, lockbox's
 * among them, the autovacuum launcher, the WAL writer).  A backend's timeout
 * handler that interrupts a wait would read the real clock as well.  This
 * library passes those calls straight to the C library instead: with no rate
 * set (only an offset) there is nothing to scale.  The calls that take an
 * absolute time (clock_nanosleep, sem_timedwait, pthread_cond_timedwait) stay
 * libfaketime's, which converts it.
 *
 * Built by test/cluster.sh: cc -shared -fPIC -o faketime_waits.so faketime_waits.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

static void *libc;

/* The C library's own definition of a function, or exit. */
static void *
libc_symbol(const char *name)
{
	void	   *symbol = libc != NULL ? dlsym(libc, name) : NULL;

	if (symbol == NULL)
	{
		fprintf(stderr, "faketime_waits: no %s in libc.so.6\n", name);
		exit(1);
	}
	return symbol;
}

#define PASS_THROUGH(type, name, params, args) \
	static type (*real_##name) params; \
	type name params \
	{ \
		return real_##name args; \
	}

PASS_THROUGH(int, select,
			 (int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t),
			 (n, r, w, e, t))
PASS_THROUGH(int, pselect,
			 (int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t,
			  const sigset_t *m),
			 (n, r, w, e, t, m))
PASS_THROUGH(int, poll, (struct pollfd *f, nfds_t n, int t), (f, n, t))
PASS_THROUGH(int, ppoll,
			 (struct pollfd *f, nfds_t n, const struct timespec *t, const sigset_t *m),
			 (f, n, t, m))
PASS_THROUGH(int, epoll_wait, (int fd, struct epoll_event *e, int n, int t),
			 (fd, e, n, t))
PASS_THROUGH(int, epoll_pwait,
			 (int fd, struct epoll_event *e, int n, int t, const sigset_t *m),
			 (fd, e, n, t, m))
PASS_THROUGH(int, nanosleep, (const struct timespec *t, struct timespec *r), (t, r))
PASS_THROUGH(int, usleep, (useconds_t u), (u))
PASS_THROUGH(unsigned int, sleep, (unsigned int s), (s))

/* At load, before any handler can run: look every one up once. */
__attribute__((constructor))
static void
faketime_waits_init(void)
{
	libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	real_select = libc_symbol("select");
	real_pselect = libc_symbol("pselect");
	real_poll = libc_symbol("poll");
	real_ppoll = libc_symbol("ppoll");
	real_epoll_wait = libc_symbol("epoll_wait");
	real_epoll_pwait = libc_symbol("epoll_pwait");
	real_nanosleep = libc_symbol("nanosleep");
	real_usleep = libc_symbol("usleep");
	real_sleep = libc_symbol("sleep");
}
