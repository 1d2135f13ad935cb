-- bench/setup.sql: what bench/lifecycle.sql needs, in a fresh database, run
-- by bench/run as the superuser postgres (the extension owner).
--
--   bench_eng  a support engineer  (lockbox_engineer; not superuser, no BYPASSRLS)
--   bench_rev  a support manager   (lockbox_reviewer)
--   bench_app  a customer admin    (lockbox_approver), bound to every tenant
--   bench_t1 .. bench_t:tenants, lockbox on, one approval required
--
-- The pgbench session stays the superuser postgres and switches with SET ROLE;
-- postgres is not a member of any of the three roles, so separation of duties
-- (which also compares session_user) holds.
\set ON_ERROR_STOP 1
CREATE EXTENSION lockbox;
CREATE ROLE bench_eng NOLOGIN NOSUPERUSER NOBYPASSRLS IN ROLE lockbox_engineer;
CREATE ROLE bench_rev NOLOGIN IN ROLE lockbox_reviewer;
CREATE ROLE bench_app NOLOGIN IN ROLE lockbox_approver;

-- two statements: a lookup inside lockbox_add_approver does not see a tenant
-- added earlier in the same statement
SELECT count(lockbox_add_tenant('bench_t' || i)) AS tenants_added
  FROM generate_series(1, :tenants) AS i;
SELECT count(lockbox_add_approver('bench_t' || i, 'bench_app')) AS approvers_bound
  FROM generate_series(1, :tenants) AS i;

-- One protected table whose rows belong to the tenant named in a column, so a
-- request (tables => NULL) covers it for every tenant, as in real use: the
-- approval grants the engineer access to it and the close takes it back.
CREATE TABLE bench_customer_data (tenant text NOT NULL, payload text);
SELECT lockbox_protect('bench_customer_data', 'tenant');
