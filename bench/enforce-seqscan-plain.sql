-- bench/enforce-seqscan-plain.sql: the application's sequential-scan
-- aggregate on the unprotected table (baseline of enforce-seqscan-protected.sql).
-- pgbench -U bench_application
SELECT sum(length(payload)) FROM t_plain;
