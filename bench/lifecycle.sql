-- bench/lifecycle.sql: one pgbench transaction = one request's full lifecycle,
-- four lockbox transitions, each its own (autocommit) transaction:
--
--   bench_eng  lockbox_request  -> pending_review
--   bench_rev  lockbox_approve  -> pending_approval (stage 1, notifies bench_app)
--   bench_app  lockbox_approve  -> approved         (stage 2, notifies requester)
--   bench_eng  lockbox_close    -> closed           (notifies requester)
--
-- lockbox's identity is current_user and separation of duties forbids the
-- requester to review or approve, so the (superuser) session switches roles
-- with SET ROLE between the steps.  SET ROLE writes nothing and commits no
-- WAL, but each one is a round trip: 4 SET ROLE + 4 transitions per pgbench
-- transaction.  No RESET ROLE at the end: the next transaction starts with
-- SET ROLE bench_eng anyway.
--
-- Each transaction picks one of the tenants bench_t1 .. bench_t<tenants> at
-- random (pgbench -D tenants=N; bench/run passes BENCH_TENANTS, default 100),
-- so concurrent clients seldom share a tenant row.
\set t random(1, :tenants)
SET ROLE bench_eng;
SELECT lockbox_request('bench_t' || :t::int, 'pgbench lifecycle benchmark', NULL, 'read', '1 hour', NULL) AS req \gset
SET ROLE bench_rev;
SELECT lockbox_approve(:req);
SET ROLE bench_app;
SELECT lockbox_approve(:req);
SET ROLE bench_eng;
SELECT lockbox_close(:req);
