# lockbox: Customer Lockbox for PostgreSQL
#
#   make demo    install what is missing, build, install, tell the story in psql
#   make test    install what is missing, build, install, run every test suite
#   make bench   the benchmarks under bench/
#
# Everything else is plain PGXS (make, make install, make installcheck), also
# in a build directory of its own (a VPATH build, as Debian's pg_buildext does):
#
#   cd /path/to/build && make -f /path/to/lockbox/Makefile [VPATH=/path/to/lockbox]
#
# C is compiled with -Wall; WERROR=1 adds -Werror to every C compile of this
# Makefile, as `make test` (and so CI) builds: a user's build must not fail
# because a newer compiler warns.

# The directory of this Makefile, which holds the sources also when the build
# runs elsewhere; every file list below is taken from it, relative to it, and
# found by make through VPATH (PGXS sets VPATH itself when this Makefile is not
# in the current directory).
lockbox_srcdir := $(dir $(realpath $(firstword $(MAKEFILE_LIST))))

EXTENSION   = lockbox
EXTVERSION := $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $(lockbox_srcdir)lockbox.control)

MODULE_big  = lockbox
OBJS        = $(patsubst $(lockbox_srcdir)%.c,%.o,$(sort $(wildcard $(lockbox_srcdir)src/*.c)))
# every install and upgrade script: lockbox--1.0.sql, then lockbox--1.0--1.1.sql ...
DATA        = $(patsubst $(lockbox_srcdir)%,%,$(sort $(wildcard $(lockbox_srcdir)sql/lockbox--*.sql)))
PGFILEDESC  = "lockbox - Customer Lockbox for PostgreSQL"
# lockbox-notify's sample configuration and systemd unit (README "Delivery")
DOCS        = src/notify/lockbox-notify.conf.sample src/notify/lockbox-notify.service

PG_CPPFLAGS = -I$(lockbox_srcdir)src -I$(libpq_srcdir)
# libpq, for a standby's worker to reach the primary (as contrib/dblink links it)
SHLIB_LINK_INTERNAL = $(libpq)
PG_CFLAGS   = -Wall $(if $(filter-out 0,$(WERROR)),-Werror)

# pg_regress: every sql/*.sql except the install scripts, in name order, from
# the source directory (PGXS passes --inputdir=$(srcdir)).
REGRESS      = $(sort $(patsubst $(lockbox_srcdir)sql/%.sql,%,$(filter-out $(lockbox_srcdir)sql/lockbox--%.sql,$(wildcard $(lockbox_srcdir)sql/*.sql))))
REGRESS_OPTS = --load-extension=lockbox
# isolationtester: test/isolation/specs/*.spec with test/isolation/expected/*.out
ISOLATION      = $(sort $(patsubst $(lockbox_srcdir)test/isolation/specs/%.spec,%,$(wildcard $(lockbox_srcdir)test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=$(lockbox_srcdir)test/isolation --load-extension=lockbox

# The PostgreSQL this project is built for. On a machine that does not have it
# yet, only demo/test/bench (which install it first) and clean work.
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

.DEFAULT_GOAL := all

ifneq ($(PGXS),)
include $(PGXS)

# Where PostgreSQL is built with OpenSSL, the audit's hashes use libcrypto's
# SHA-256 directly (src/audit.c): verification hashes millions of rows
ifeq ($(with_ssl),openssl)
SHLIB_LINK += -lcrypto
endif

# make installcheck changes lockbox's settings (ALTER SYSTEM, then reload) and
# creates roles: it runs only against a throwaway server that says so in its
# configuration files (pg_file_settings, which a superuser reads), as
# test/lockbox_test.conf does for the servers test/cluster.sh starts:
#   lockbox_test.installcheck = on
installcheck: installcheck-guard
.PHONY: installcheck-guard
installcheck-guard:
ifneq ($(filter --host --port --user,$(EXTRA_REGRESS_OPTS)),)
	@echo "make installcheck: write --host=HOST, --port=PORT and --user=USER in EXTRA_REGRESS_OPTS (with '=')" >&2; exit 1
endif
	@marker=$$('$(bindir)/psql' -X -A -t -q -d postgres $(filter --host=% --port=% --user=%,$(EXTRA_REGRESS_OPTS)) \
		-c "SELECT setting FROM pg_catalog.pg_file_settings WHERE name = 'lockbox_test.installcheck' AND error IS NULL ORDER BY seqno DESC LIMIT 1" 2>&1); \
	if [ "$$marker" != on ]; then \
		echo "make installcheck: refused: the server at PGHOST=$${PGHOST:-(unset)} PGPORT=$${PGPORT:-(unset)} is no throwaway test server." >&2; \
		echo "The tests change lockbox's settings with ALTER SYSTEM and create roles; they run only, as a superuser," >&2; \
		echo "against a server whose configuration file sets lockbox_test.installcheck = on, as test/lockbox_test.conf" >&2; \
		echo "does for the throwaway server of test/cluster.sh (make test starts one)." >&2; \
		[ -z "$$marker" ] || echo "($$marker)" >&2; \
		exit 1; \
	fi
else
all install installcheck:
	@echo "PostgreSQL 15 server headers are missing; run 'make test' or 'make demo', which install them." >&2
	@exit 1
endif

# lockbox-notify, the delivery service (src/notify/; README "Delivery"): a
# program of its own, built beside the extension (OBJS takes src/*.c only)
# and installed into PostgreSQL's bindir (DOCS above install its sample
# configuration and systemd unit).
NOTIFY_PROGRAM = src/notify/lockbox-notify

ifneq ($(PGXS),)
all: $(NOTIFY_PROGRAM)
$(NOTIFY_PROGRAM): src/notify/lockbox-notify.c | $(CURDIR)/src/notify
	$(CC) $(CFLAGS) -I$(includedir) $(CPPFLAGS) -o $@ $< \
		-L$(libdir) $(LDFLAGS) -lpq -lcurl -lcrypto
$(CURDIR)/src/notify:
	$(MKDIR_P) $@

install: install-notify
.PHONY: install-notify
install-notify: $(NOTIFY_PROGRAM)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $< '$(DESTDIR)$(bindir)/lockbox-notify'

uninstall: uninstall-notify
.PHONY: uninstall-notify
uninstall-notify:
	rm -f '$(DESTDIR)$(bindir)/lockbox-notify'

EXTRA_CLEAN = $(NOTIFY_PROGRAM)
endif

# The objects (and the bitcode of a server built with LLVM) go to src/ of the
# build directory, which a VPATH build creates, and are rebuilt when the
# shared header changes (Debian's PGXS tracks no header dependencies).
$(OBJS) $(OBJS:.o=.bc): $(patsubst $(lockbox_srcdir)%,%,$(wildcard $(lockbox_srcdir)src/*.h)) | $(CURDIR)/src
$(CURDIR)/src:
	$(MKDIR_P) $@

.PHONY: demo test bench deps
deps:
	@$(lockbox_srcdir)test/deps.sh

demo: deps
	@$(lockbox_srcdir)test/demo.sh

test: deps
	@$(lockbox_srcdir)test/run.sh

bench: deps
	@$(lockbox_srcdir)bench/run
