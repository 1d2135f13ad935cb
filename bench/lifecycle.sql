-- bench/lifecycle.sql: one pgbench transaction = one request's full lifecycle,
-- four lockbox transitions, each its own transaction and one round trip:
--
--   bench_eng  lockbox_request  -> pending_review
--   bench_rev  lockbox_approve  -> pending_approval (stage 1, notifies bench_app)
--   bench_app  lockbox_approve  -> approved         (stage 2, notifies requester)
--   bench_eng  lockbox_close    -> closed           (notifies requester)
--
-- lockbox's identity is current_user and separation of duties forbids the
-- requester to review or approve, so the (superuser) session plays the three
-- people with SET ROLE.  In real use each of them has a session of their own
-- and sends one statement per step; here each step's SET ROLE goes in the
-- same pipeline (one round trip, one implicit transaction) as the step
-- itself.  The request's step cannot be pipelined (\gset reads its id): each
-- client starts as bench_eng (bench/run connects with
-- PGOPTIONS='-c role=bench_eng'), and the close leaves it bench_eng for the
-- next lifecycle.
--
-- Each transaction picks one of the tenants bench_t1 .. bench_t<tenants> at
-- random (pgbench -D tenants=N; bench/run passes BENCH_TENANTS, default 100),
-- so concurrent clients seldom share a tenant row.
\set t random(1, :tenants)
SELECT lockbox_request('bench_t' || :t::int, 'pgbench lifecycle benchmark', NULL, 'read', '1 hour', NULL) AS req \gset
\startpipeline
SET ROLE bench_rev;
SELECT lockbox_approve(:req);
\endpipeline
\startpipeline
SET ROLE bench_app;
SELECT lockbox_approve(:req);
\endpipeline
\startpipeline
SET ROLE bench_eng;
SELECT lockbox_close(:req);
\endpipeline
