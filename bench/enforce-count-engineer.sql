-- bench/enforce-count-engineer.sql: the engineer counts what they may see; the
-- lockbox policy keeps it to their one tenant (compare with
-- enforce-count-owner.sql).
-- pgbench -U bench_reader
SELECT count(*) FROM t_protected;
