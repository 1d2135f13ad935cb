-- bench/worker-bulk.sql: :n pending requests (pending_review, filed now by
-- bench_eng) whose review deadline is the same instant, :'deadline', inserted
-- directly by the superuser postgres in one transaction.  An insert by hand
-- does not tell the worker about the new, earlier deadline (lockbox_request
-- would, at commit); lockbox.start_worker() in the same transaction wakes the
-- database's worker at commit, and its pass then reads the next deadline.
\set ON_ERROR_STOP 1
BEGIN;
INSERT INTO lockbox.request (tenant, requester, reason, tables, access, duration,
                             state, created_at, deadline)
SELECT 'bench_t' || (1 + i % :tenants), 'bench_eng'::regrole,
       'bulk expiry for the worker benchmark', ARRAY['bench_customer_data'::regclass],
       'read', interval '1 hour', 'pending_review', now(), :'deadline'::timestamptz
  FROM generate_series(1, :n) AS i;
SELECT lockbox.start_worker();
COMMIT;
