-- bench/enforce-pk-protected.sql: the application's point query by primary
-- key on the protected table (compare with enforce-pk-plain.sql).
-- pgbench -U bench_application -D rows=N
\set id random(0, :rows - 1)
SELECT * FROM t_protected WHERE id = :id;
