-- bench/history-audit.sql: :m audit rows of history, inserted directly (as the
-- superuser postgres) with valid hashes, so that lockbox_verify_audit checks
-- them as it checks rows lockbox wrote: pairs of rows, the first without
-- parents, the second linking it (the hash is format v2 of src/audit.c,
-- audit_row_hash_v2, written out in SQL), stored as 1.3 stores them.  Two
-- thirds are statements on protected data (event access, one of 97
-- statements of lockbox.audit_statement, with the typed fields lockbox
-- writes for one), one third lifecycle rows; spread over the past :m
-- seconds, one engineer in a thousand is bench_eng2, the tenants are
-- bench_t1 .. bench_t:tenants.
\set ON_ERROR_STOP 1
-- a string as the hash covers it: not null, length, bytes
CREATE FUNCTION pg_temp.s(t text) RETURNS bytea LANGUAGE sql IMMUTABLE AS
  $$ SELECT '\x00'::bytea || int4send(octet_length(t)) || convert_to(t, 'UTF8') $$;
CREATE FUNCTION pg_temp.b(t bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS
  $$ SELECT '\x00'::bytea || int4send(length(t)) || t $$;
INSERT INTO lockbox.audit_statement (digest, relation, command, query)
SELECT sha256(convert_to('lockbox statement', 'UTF8') || pg_temp.s(st.relation)
			  || pg_temp.s(st.command) || pg_temp.s(st.query)),
	   st.relation, st.command, st.query
  FROM (SELECT 'public.bench_customer_data' AS relation, 'SELECT' AS command,
			   'SELECT * FROM bench_customer_data WHERE id = ' || j AS query
		  FROM generate_series(0, 96) AS j) AS st
ON CONFLICT (digest) DO NOTHING;
CREATE TEMP TABLE bench_statement AS
SELECT (regexp_match(query, '\d+$'))[1]::int AS j, id, digest
  FROM lockbox.audit_statement WHERE query LIKE 'SELECT * FROM bench_customer_data WHERE id = %';
SELECT setval('lockbox.audit_seq', coalesce((SELECT max(seq) FROM lockbox.audit_log), 0) + 1) AS base \gset
INSERT INTO lockbox.audit_log (seq, at, session_user_name, actor, event,
		request_id, tenant, detail, parents, hash, statement_id, pid)
SELECT g.seq, g.at, NULL, c.actor, c.event, c.request_id, c.tenant, c.detail,
	   g.parents, g.hash, st.statement_id, c.pid
  FROM generate_series(0, :m / 2 - 1) AS k,
	   LATERAL (
		SELECT :base + 2 * k AS seq,
			   now() - (:m - 2 * k) * interval '1 second' AS at,
			   CASE WHEN k % 1000 = 0 THEN 'bench_eng2' ELSE 'bench_eng' END AS actor,
			   CASE WHEN k % 3 = 0 THEN 'approve' ELSE 'access' END AS event,
			   1 + k / 5 AS request_id,
			   'bench_t' || (1 + k % :tenants) AS tenant,
			   CASE WHEN k % 3 = 0 THEN '{"stage": 2, "comment": "ok"}'::jsonb END AS detail,
			   CASE WHEN k % 3 <> 0 THEN 4242 END AS pid
		) AS c,
	   LATERAL (SELECT CASE WHEN k % 3 <> 0 THEN (SELECT bs.id FROM bench_statement bs WHERE bs.j = k % 97) END AS statement_id,
					   CASE WHEN k % 3 <> 0 THEN (SELECT bs.digest FROM bench_statement bs WHERE bs.j = k % 97) END AS digest) AS st,
	   -- the fields after seq and at, hashed as hash_str and hash_int64 do
	   LATERAL (
		SELECT pg_temp.s(c.actor) || pg_temp.s(c.actor) || pg_temp.s(c.event)
			|| '\x01'::bytea || int8send(c.request_id::bigint) || pg_temp.s(c.tenant)
			|| CASE WHEN c.detail IS NOT NULL
					THEN convert_to('j', 'UTF8') || pg_temp.b(lockbox.jsonb_bytes(c.detail))
					ELSE convert_to('a', 'UTF8') || st.digest || int8send(c.pid::bigint)
						 || int8send(1) || int8send(-1) || int8send(-1)
						 || '\x01'::bytea || '\x01'::bytea || '\x01'::bytea END
			AS fields,
			   (extract(epoch FROM c.at) * 1000000)::bigint - 946684800000000 AS at_us
		) AS f,
	   LATERAL (
		SELECT sha256(convert_to('lockbox audit v2', 'UTF8') || int8send(0)
					  || int8send(c.seq) || int8send(f.at_us) || f.fields) AS h1
		) AS odd,
	   -- the second row's only parent is the row before it: parents is NULL
	   LATERAL (VALUES
		(c.seq, c.at, '{}'::bigint[], odd.h1),
		(c.seq + 1, c.at + interval '1 second', NULL,
		 sha256(convert_to('lockbox audit v2', 'UTF8') || int8send(1) || int8send(c.seq) || odd.h1
				|| int8send(c.seq + 1) || int8send(f.at_us + 1000000) || f.fields))
		) AS g(seq, at, parents, hash);
SELECT setval('lockbox.audit_seq', (SELECT max(seq) FROM lockbox.audit_log)) AS last_seq;
