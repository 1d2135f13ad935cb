-- bench/history-audit.sql: :m audit rows of history, inserted directly (as the
-- superuser postgres) with valid hashes, so that lockbox_verify_audit checks
-- them as it checks rows lockbox wrote: pairs of rows, the first without
-- parents, the second linking it (the hash is the one of src/audit.c,
-- audit_row_hash, written out in SQL; none of these rows has a NULL field).  Two thirds are statements on protected
-- data (event access, with the detail lockbox writes for one), one third
-- lifecycle rows; spread over the past :m seconds, one engineer in a thousand
-- is bench_eng2, the tenants are bench_t1 .. bench_t:tenants.
\set ON_ERROR_STOP 1
SELECT setval('lockbox.audit_seq', coalesce((SELECT max(seq) FROM lockbox.audit_log), 0) + 1) AS base \gset
INSERT INTO lockbox.audit_log (seq, at, session_user_name, actor, event,
		request_id, tenant, detail, parents, hash)
SELECT g.seq, g.at, c.actor, c.actor, c.event, c.request_id, c.tenant, c.detail,
	   g.parents, g.hash
  FROM generate_series(0, :m / 2 - 1) AS k,
	   LATERAL (
		SELECT :base + 2 * k AS seq,
			   now() - (:m - 2 * k) * interval '1 second' AS at,
			   (CASE WHEN k % 1000 = 0 THEN 'bench_eng2' ELSE 'bench_eng' END)::name AS actor,
			   CASE WHEN k % 3 = 0 THEN 'approve' ELSE 'access' END AS event,
			   1 + k / 5 AS request_id,
			   'bench_t' || (1 + k % :tenants) AS tenant,
			   CASE WHEN k % 3 = 0 THEN '{"stage": 2, "comment": "ok"}'::jsonb
					ELSE jsonb_build_object('relation', 'public.bench_customer_data',
						'command', 'SELECT', 'pid', 4242, 'query',
						'SELECT * FROM bench_customer_data WHERE id = ' || (k % 97)) END AS detail
		) AS c,
	   -- the fields after seq and at, hashed as hash_text and hash_int64 do
	   LATERAL (
		SELECT '\x00'::bytea || int4send(octet_length(c.actor::text)) || convert_to(c.actor::text, 'UTF8')
			|| '\x00'::bytea || int4send(octet_length(c.actor::text)) || convert_to(c.actor::text, 'UTF8')
			|| '\x00'::bytea || int4send(octet_length(c.event)) || convert_to(c.event, 'UTF8')
			|| '\x01'::bytea || int8send(c.request_id::bigint)
			|| '\x00'::bytea || int4send(octet_length(c.tenant)) || convert_to(c.tenant, 'UTF8')
			|| '\x00'::bytea || int4send(octet_length(c.detail::text)) || convert_to(c.detail::text, 'UTF8')
			AS fields,
			   (extract(epoch FROM c.at) * 1000000)::bigint - 946684800000000 AS at_us
		) AS f,
	   LATERAL (
		SELECT sha256(convert_to('lockbox audit v1', 'UTF8') || int8send(0)
					  || int8send(c.seq) || int8send(f.at_us) || f.fields) AS h1
		) AS odd,
	   LATERAL (VALUES
		(c.seq, c.at, '{}'::bigint[], odd.h1),
		(c.seq + 1, c.at + interval '1 second', ARRAY[c.seq],
		 sha256(convert_to('lockbox audit v1', 'UTF8') || int8send(1) || int8send(c.seq) || odd.h1
				|| int8send(c.seq + 1) || int8send(f.at_us + 1000000) || f.fields))
		) AS g(seq, at, parents, hash);
SELECT setval('lockbox.audit_seq', (SELECT max(seq) FROM lockbox.audit_log)) AS last_seq;
