-- bench/enforce-tenant-pk.sql: a point query by primary key on one of tenant
-- T's rows (ids are k * tenants + T), run as the engineer (access to T) and
-- as the owner (the baseline).
-- pgbench -U bench_reader|bench_owner -D rows=N -D tenants=M -D tenant=T
\set k random(0, :rows / :tenants - 1)
\set id :k * :tenants + :tenant
SELECT * FROM t_protected WHERE id = :id;
