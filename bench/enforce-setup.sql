-- bench/enforce-setup.sql: what the enforcement benchmark needs, after
-- bench/setup.sql, run by bench/run as the superuser postgres.
--
--   t_plain, t_protected  two identical tables of :rows rows, :tenants tenants
--                         (tenant = id % :tenants, so a tenant's ids are
--                         k * :tenants + tenant), an index on tenant, owned by
--                         bench_owner; t_protected is protected by lockbox
--                         (tenant column), t_plain is not
--   bench_owner           the tables' owner (LOGIN, not superuser)
--   bench_application     the application (LOGIN): plain SELECT on both
--                         (bench_reader has SELECT on t_plain as well)
--   bench_reader          a support engineer (LOGIN, lockbox_engineer) with one
--                         approved read request for tenant :tenant on
--                         t_protected, for lockbox.max_access_duration
--
-- The request goes through the real lifecycle: bench_reader files it in a
-- session of its own, bench_rev reviews it and bench_app (bound to the tenant)
-- approves it.
\set ON_ERROR_STOP 1
CREATE ROLE bench_owner LOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE bench_application LOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE bench_reader LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE lockbox_engineer;

-- one load, copied: both tables have the same rows in the same heap order
CREATE TABLE t_plain (id bigint NOT NULL, tenant int NOT NULL, payload text NOT NULL);
INSERT INTO t_plain
SELECT i, i % :tenants, md5(i::text) FROM generate_series(0, :rows - 1) AS i;
CREATE TABLE t_protected (id bigint NOT NULL, tenant int NOT NULL, payload text NOT NULL);
INSERT INTO t_protected SELECT id, tenant, payload FROM t_plain;
ALTER TABLE t_plain ADD PRIMARY KEY (id);
ALTER TABLE t_protected ADD PRIMARY KEY (id);
CREATE INDEX t_plain_tenant_idx ON t_plain (tenant);
CREATE INDEX t_protected_tenant_idx ON t_protected (tenant);
ALTER TABLE t_plain OWNER TO bench_owner;
ALTER TABLE t_protected OWNER TO bench_owner;
GRANT SELECT ON t_plain, t_protected TO bench_application;
-- the engineer's statements on a table lockbox does not protect (case d)
GRANT SELECT ON t_plain TO bench_reader;

-- every page all-visible, so index-only scans read no heap
VACUUM (FREEZE, ANALYZE) t_plain;
VACUUM (FREEZE, ANALYZE) t_protected;

SELECT lockbox_protect('t_protected', tenant_column => 'tenant');
SELECT lockbox_add_tenant(:'tenant');
SELECT lockbox_add_approver(:'tenant', 'bench_app');

-- the engineer files the request in a session of its own
\c - bench_reader
SELECT lockbox_request(:'tenant', 'enforcement benchmark: reading tenant ' || :'tenant',
                       ARRAY['t_protected']::regclass[], 'read',
                       current_setting('lockbox.max_access_duration')::interval) AS req \gset
\c - postgres
SET ROLE bench_rev;
SELECT lockbox_approve(:req, 'enforcement benchmark: reviewed');
SET ROLE bench_app;
SELECT lockbox_approve(:req, 'enforcement benchmark: approved');
RESET ROLE;
SELECT request_id, engineer, tenant, tables, access, starts_at, ends_at
  FROM lockbox.active_access WHERE request_id = :req;
