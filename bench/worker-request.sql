-- bench/worker-request.sql: one request by bench_eng, left pending: its review
-- deadline is lockbox.review_timeout from now.  bench/run runs it 1,000 times,
-- paced by pgbench -R, so the deadlines are spread over about 30 seconds.
-- pgbench -D tenants=N
\set t random(1, :tenants)
SET ROLE bench_eng;
SELECT lockbox_request('bench_t' || :t::int, 'worker expiry latency benchmark', NULL, 'read', '1 hour', NULL);
