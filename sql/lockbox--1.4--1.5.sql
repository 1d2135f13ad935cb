/* lockbox--1.4--1.5.sql: upgrade lockbox from 1.4 to 1.5 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.5'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, ..., 1.3 to 1.4, then this one): a fresh 1.5 and an upgraded
-- 1.0 to 1.4 are the same by construction.

------------------------------------------------------------------------------
-- History: an auditor's (a reviewer's) statements of the last hour, in
-- proportion to the rows it returns (README "History and retention").
--
-- Until 1.4 every branch of lockbox.access_log was joined to its statement
-- (lockbox.audit_statement) above the union, where the planner knows nothing
-- of how many statements the rows name: for the hour's 2,400 rows of a
-- reviewer or auditor it joined them by hash and then sorted them, wide, by
-- time, and each row's last_at was computed in numeric (int8 to numeric,
-- divided, numeric to float8 through its text).  From 1.5:
--   - the branch of reviewers and auditors joins its rows to their statements
--     itself, under the union: read in time order (an ordered subquery, so
--     that the test of the caller, which holds for every row or none, gates
--     the scan and not the join), then looked up by a nested loop, which the
--     planner caches per statement (Memoize) from the statistics of
--     lockbox.audit_log (ANALYZE lockbox.audit_log: autovacuum analyzes its
--     partitions, not the partitioned table): no sort.  The other branches
--     are joined above their own union, as before (a LIMIT looks up only the
--     statements of the rows it returns);
--   - each branch computes the view's columns itself;
--   - last_at is at plus last_at_usec microseconds, multiplied as an
--     interval (the same value for any span under 2^51 microseconds, some
--     71 years).
------------------------------------------------------------------------------
DO $views$
DECLARE
	slots CONSTANT integer := 4;
	-- the columns of an audit row "a" each branch passes up (as in 1.4)
	access CONSTANT text := $c$a.at, a.actor, a.request_id, a.tenant, a.event, a.detail,
		   a.statement_id, a.statements, a.last_at_usec, a.reason, a.node,
		   a.query_length, a.query_sha256, a.session_user_name, a.pid, a.seq$c$;
	is_access CONSTANT text := $c$a.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])$c$;
	not_me CONSTANT text := $c$a.actor OPERATOR(pg_catalog.<>) pg_catalog."current_user"()::pg_catalog.text COLLATE pg_catalog."default"$c$;
	access_row CONSTANT text := $c$SELECT a.request_id, a.event, a.detail, a.statement_id,
				   a.statements, a.last_at_usec, a.reason, a.node, a.query_length,
				   a.query_sha256, a.session_user_name, a.pid
			  FROM lockbox.audit_log a
			 WHERE a.at OPERATOR(pg_catalog.=) k.at
			   AND a.seq OPERATOR(pg_catalog.=) k.seq OFFSET 0$c$;
	-- a row's last statement: at plus last_at_usec microseconds
	last_at CONSTANT text := $c$(interval '1 microsecond' OPERATOR(pg_catalog.*)
		   COALESCE(a.last_at_usec,
					(a.detail OPERATOR(pg_catalog.->>) 'last_at_usec')::pg_catalog.int8, 0)::pg_catalog.float8)$c$;
	final text;
	access_slots text;
BEGIN
	-- the view's columns, of audit row "a" and its statement "s"
	final := format($c$a.at, a.actor::pg_catalog.name AS engineer, a.request_id, a.tenant,
	   COALESCE(s.relation, a.detail OPERATOR(pg_catalog.->>) 'relation') AS relation,
	   COALESCE(s.command, a.detail OPERATOR(pg_catalog.->>) 'command') AS command,
	   COALESCE(s.query, a.detail OPERATOR(pg_catalog.->>) 'query') AS query,
	   COALESCE(a.statements::pg_catalog.int8,
				(a.detail OPERATOR(pg_catalog.->>) 'statements')::pg_catalog.int8, 1) AS statements,
	   a.at OPERATOR(pg_catalog.+) %1$s AS last_at,
	   CASE WHEN a.event OPERATOR(pg_catalog.=) 'refused' THEN 'refused'
			ELSE 'allowed' END AS outcome,
	   COALESCE(a.reason, a.detail OPERATOR(pg_catalog.->>) 'reason') AS reason,
	   COALESCE(a.node, a.detail OPERATOR(pg_catalog.->>) 'node', 'primary') AS node,
	   COALESCE(a.query_length,
				(a.detail OPERATOR(pg_catalog.->>) 'query_length')::pg_catalog.int8,
				pg_catalog.octet_length(COALESCE(s.query,
					a.detail OPERATOR(pg_catalog.->>) 'query'))) AS query_length,
	   COALESCE(a.query_sha256, a.detail OPERATOR(pg_catalog.->>) 'query_sha256') AS query_sha256,
	   COALESCE(a.session_user_name, a.actor)::pg_catalog.name AS session_user_name,
	   COALESCE(a.pid, (a.detail OPERATOR(pg_catalog.->>) 'pid')::pg_catalog.int4) AS pid,
	   a.seq$c$, last_at);

	SELECT string_agg(format($b$
		UNION ALL
		-- approvers: the statements on their tenant %1$s (by the tenant's newest
		-- statement, oldest first), read index only in time order; the rest of
		-- each row looked up by its time and seq (one partition's primary key)
		(SELECT k.at, k.actor, a.request_id, k.tenant, a.event, a.detail,
			   a.statement_id, a.statements, a.last_at_usec, a.reason, a.node,
			   a.query_length, a.query_sha256, a.session_user_name, a.pid, k.seq
		  FROM lockbox.audit_log k,
			   LATERAL (%2$s) a
		 WHERE NOT (SELECT lockbox.sees_all())
		   AND k.actor OPERATOR(pg_catalog.<>) pg_catalog."current_user"()::pg_catalog.text COLLATE pg_catalog."default"
		   AND k.tenant OPERATOR(pg_catalog.=) (SELECT m.tenant FROM mine m
					 WHERE m.n OPERATOR(pg_catalog.=) %1$s)
		   AND k.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
		 ORDER BY k.at DESC)$b$, i, access_row), '' ORDER BY i)
	  INTO access_slots FROM generate_series(1, slots) AS i;

	EXECUTE format($v$
CREATE OR REPLACE VIEW lockbox.access_log WITH (security_barrier) AS
WITH mine AS MATERIALIZED (
	-- an approver's tenants: beyond %4$s of them, those with the oldest newest
	-- statement first, those without any before them (a tenant's newest
	-- statement: in the last week's partition, else in each month's)
	SELECT t.tenant, t.newest,
		   pg_catalog.row_number() OVER (ORDER BY t.newest NULLS FIRST, t.tenant) AS n
	  FROM (SELECT m.tenant,
				   CASE WHEN m.tenants OPERATOR(pg_catalog.>) %4$s
						THEN COALESCE(
							(SELECT pg_catalog.max(q.at) FROM lockbox.audit_log q
							  WHERE q.tenant OPERATOR(pg_catalog.=) m.tenant
								AND q.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
								AND q.at OPERATOR(pg_catalog.>=) (pg_catalog.statement_timestamp()
									OPERATOR(pg_catalog.-) interval '7 days')),
							(SELECT pg_catalog.max(q.at) FROM lockbox.audit_log q
							  WHERE q.tenant OPERATOR(pg_catalog.=) m.tenant
								AND q.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[]))) END AS newest
			  FROM (SELECT ap.tenant, pg_catalog.count(*) OVER () AS tenants
					  FROM (SELECT DISTINCT ap.tenant FROM lockbox.approver ap
							 WHERE lockbox.approves(ap.approver)) AS ap) AS m) AS t)
SELECT a.*
  FROM (
	-- reviewers and auditors: every row, joined to its statement here
	(SELECT %8$s
	  FROM (SELECT %1$s
			  FROM lockbox.audit_log a
			 WHERE (SELECT lockbox.sees_all())
			   AND %2$s
			 ORDER BY a.at DESC) AS a
	  LEFT JOIN lockbox.audit_statement s ON s.id OPERATOR(pg_catalog.=) a.statement_id
	 ORDER BY a.at DESC)
	UNION ALL
	(SELECT %8$s
	  FROM (
		-- engineers: their own, read index only in time order; the rest of
		-- each row looked up by its time and seq
		(SELECT k.at, k.actor, a.request_id, k.tenant, a.event, a.detail,
			   a.statement_id, a.statements, a.last_at_usec, a.reason, a.node,
			   a.query_length, a.query_sha256, a.session_user_name, a.pid, k.seq
		  FROM lockbox.audit_log k,
			   LATERAL (%6$s) a
		 WHERE NOT (SELECT lockbox.sees_all())
		   AND k.actor OPERATOR(pg_catalog.=) pg_catalog."current_user"()::pg_catalog.text COLLATE pg_catalog."default"
		   AND k.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
		 ORDER BY k.at DESC)%3$s
		UNION ALL
		-- approvers: the statements on their other tenants (the most recently
		-- active), read in time order through every tenant's: a test that no
		-- index serves, which the planner takes to keep nearly every row
		(SELECT %1$s
		  FROM lockbox.audit_log a
		 WHERE NOT (SELECT lockbox.sees_all())
		   AND EXISTS (SELECT 1 FROM mine m WHERE m.n OPERATOR(pg_catalog.>) %4$s)
		   AND %5$s
		   AND pg_catalog.array_position(ARRAY(SELECT m.tenant FROM mine m
					 WHERE m.n OPERATOR(pg_catalog.>) %4$s), a.tenant) IS NOT NULL
		   -- (from their newest statement down: the newer ones are others')
		   AND a.at OPERATOR(pg_catalog.<=) (SELECT pg_catalog.max(m.newest) FROM mine m
					 WHERE m.n OPERATOR(pg_catalog.>) %4$s)
		   AND %2$s
		 ORDER BY a.at DESC)
	  ) AS a
	  -- (joined above the branches, read newest first: a LIMIT looks up only
	  -- the statements of the rows it returns)
	  LEFT JOIN lockbox.audit_statement s ON s.id OPERATOR(pg_catalog.=) a.statement_id
	 ORDER BY a.at DESC)
) AS a
 ORDER BY a.at DESC$v$, access, is_access, access_slots, slots, not_me, access_row, last_at, final);
END
$views$;
