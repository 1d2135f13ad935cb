-- bench/worker-history.sql: :n requests of history, inserted directly (as the
-- superuser postgres) in final states, as a long-used lockbox would hold them:
-- 60% closed by the engineer, 10% closed at the window's end, 10% expired,
-- 10% denied, 10% cancelled, filed over the past :n * 30 seconds.  Only the
-- request rows: no audit rows (they would not chain), no notifications.
\set ON_ERROR_STOP 1
INSERT INTO lockbox.request (tenant, requester, reason, tables, access, duration,
                             state, created_at, reviewer, reviewed_at, approved_at,
                             access_ends_at, closed_at, close_reason)
SELECT 'bench_t' || (1 + i % :tenants), 'bench_eng'::regrole,
       'history for the worker benchmark', ARRAY['bench_customer_data'::regclass],
       'read', interval '1 hour',
       CASE WHEN i % 10 < 7 THEN 'closed' WHEN i % 10 = 7 THEN 'expired'
            WHEN i % 10 = 8 THEN 'denied' ELSE 'cancelled' END,
       c,
       CASE WHEN i % 10 <= 6 OR i % 10 = 8 THEN 'bench_rev'::regrole END,
       CASE WHEN i % 10 <= 6 OR i % 10 = 8 THEN c + interval '5 minutes' END,
       CASE WHEN i % 10 <= 6 THEN c + interval '10 minutes' END,
       CASE WHEN i % 10 <= 6 THEN c + interval '70 minutes' END,
       CASE WHEN i % 10 < 6 THEN c + interval '40 minutes'
            WHEN i % 10 = 6 THEN c + interval '70 minutes'
            WHEN i % 10 = 7 THEN c + interval '12 hours'
            ELSE c + interval '5 minutes' END,
       CASE WHEN i % 10 < 6 THEN 'resolved' WHEN i % 10 = 6 THEN 'window_elapsed' END
  FROM generate_series(1, :n) AS i,
       LATERAL (SELECT now() - (:n - i) * interval '30 seconds' - interval '1 day' AS c) AS t;
