# lockbox: Customer Lockbox for PostgreSQL
#
#   make demo    install what is missing, build, install, tell the story in psql
#   make test    install what is missing, build, install, run every test suite
#   make bench   the benchmarks under bench/
#
# Everything else is plain PGXS (make, make install, make installcheck).

EXTENSION   = lockbox
EXTVERSION := $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" $(dir $(lastword $(MAKEFILE_LIST)))lockbox.control)

MODULE_big  = lockbox
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
# every install and upgrade script: lockbox--1.0.sql, then lockbox--1.0--1.1.sql ...
DATA        = $(sort $(wildcard sql/lockbox--*.sql))
PGFILEDESC  = "lockbox - Customer Lockbox for PostgreSQL"

PG_CPPFLAGS = -Isrc
PG_CFLAGS   = -Wall -Werror

# pg_regress: every sql/*.sql except the install scripts, in name order.
REGRESS      = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/lockbox--%.sql,$(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=lockbox
# isolationtester: test/isolation/specs/*.spec with test/isolation/expected/*.out
ISOLATION      = $(sort $(patsubst test/isolation/specs/%.spec,%,$(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=lockbox

# The PostgreSQL this project is built for. On a machine that does not have it
# yet, only demo/test/bench (which install it first) and clean work.
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

.DEFAULT_GOAL := all

ifneq ($(PGXS),)
include $(PGXS)
else
all install installcheck:
	@echo "PostgreSQL 15 server headers are missing; run 'make test' or 'make demo', which install them." >&2
	@exit 1
endif

.PHONY: demo test bench deps
deps:
	@test/deps.sh

demo: deps
	@test/demo.sh

test: deps
	@test/run.sh

bench: deps
	@bench/run
