-- bench/enforce-seqscan-protected.sql: the application's sequential-scan
-- aggregate on the protected table (compare with enforce-seqscan-plain.sql).
-- pgbench -U bench_application
SELECT sum(length(payload)) FROM t_protected;
