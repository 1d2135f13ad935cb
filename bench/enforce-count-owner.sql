-- bench/enforce-count-owner.sql: the owner counts one tenant's rows by hand
-- (baseline of enforce-count-engineer.sql).
-- pgbench -U bench_owner -D tenant=T
SELECT count(*) FROM t_protected WHERE tenant = :tenant;
