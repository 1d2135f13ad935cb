-- bench/enforce-pk-plain.sql: the application's point query by primary key
-- on the unprotected table (baseline of enforce-pk-protected.sql; also
-- case d, run by the engineer with lockbox loaded and not).
-- pgbench -U bench_application -D rows=N
\set id random(0, :rows - 1)
SELECT * FROM t_plain WHERE id = :id;
