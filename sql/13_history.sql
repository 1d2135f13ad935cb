--
-- 13_history: the everyday questions read indexes, not the history.
--
-- Each question is asked as the role that asks it, over 25,000 requests and
-- 60,000 audit rows (README "History and retention"); its plan must read
-- lockbox.request and lockbox.audit_log through indexes only (no sequential
-- scan of either), and cost less than jit_above_cost, so that JIT never
-- compiles it.  The rows are inserted directly and rolled back at the end:
-- their hashes are not real, and they are not to stay.
--
CREATE ROLE regress_hist_eng IN ROLE lockbox_engineer;
CREATE ROLE regress_hist_eng2 IN ROLE lockbox_engineer;
CREATE ROLE regress_hist_rev IN ROLE lockbox_reviewer;
CREATE ROLE regress_hist_app IN ROLE lockbox_approver;
CREATE ROLE regress_hist_app2 IN ROLE lockbox_approver;
CREATE ROLE regress_hist_app6 IN ROLE lockbox_approver;
CREATE ROLE regress_hist_app50 IN ROLE lockbox_approver;

BEGIN;
SELECT count(lockbox_add_tenant('regress_hist_t' || i)) AS tenants
  FROM generate_series(1, 50) AS i;
SELECT lockbox_add_approver('regress_hist_t1', 'regress_hist_app');
SELECT count(lockbox_add_approver('regress_hist_t' || i, 'regress_hist_app2')) AS bound
  FROM generate_series(1, 3) AS i;
CREATE TABLE regress_hist_data (tenant text NOT NULL, payload text);
SELECT lockbox_protect('regress_hist_data', 'tenant');

-- settled history, one request every 30 s, and a few open ones
INSERT INTO lockbox.request (tenant, requester, reason, tables, access, duration,
		state, created_at, closed_at, close_reason)
SELECT 'regress_hist_t' || (1 + i % 50),
	   CASE WHEN i % 500 = 0 THEN 'regress_hist_eng2' ELSE 'regress_hist_eng' END::regrole,
	   'history of the regression test', ARRAY['regress_hist_data'::regclass],
	   'read', interval '1 hour',
	   CASE WHEN i % 3 = 0 THEN 'denied' ELSE 'closed' END,
	   now() - (25000 - i) * interval '30 seconds' - interval '1 day',
	   now() - (25000 - i) * interval '30 seconds', 'resolved'
  FROM generate_series(1, 25000) AS i;
INSERT INTO lockbox.request (tenant, requester, reason, tables, access, duration,
		state, created_at, deadline)
SELECT 'regress_hist_t' || (1 + i % 5), 'regress_hist_eng'::regrole,
	   'pending in the regression test', ARRAY['regress_hist_data'::regclass],
	   'read', interval '1 hour',
	   CASE WHEN i % 2 = 0 THEN 'pending_approval' ELSE 'pending_review' END,
	   now(), now() + interval '10 hours'
  FROM generate_series(1, 20) AS i;
-- the audit: statements on protected data and lifecycle rows
INSERT INTO lockbox.audit_log (seq, at, session_user_name, actor, event,
		request_id, tenant, detail, parents, hash)
SELECT nextval('lockbox.audit_seq'), now() - (60000 - i) * interval '10 seconds',
	   'regress_hist_eng',
	   CASE WHEN i % 500 = 0 THEN 'regress_hist_eng2' ELSE 'regress_hist_eng' END,
	   CASE WHEN i % 3 = 0 THEN 'approve' ELSE 'access' END,
	   (SELECT min(id) FROM lockbox.request) + i / 3,
	   'regress_hist_t' || (1 + i % 50),
	   jsonb_build_object('relation', 'public.regress_hist_data',
						  'command', 'SELECT', 'query', 'SELECT 1'),
	   '{}', sha256(i::text::bytea)
  FROM generate_series(1, 60000) AS i;
ANALYZE lockbox.request;
ANALYZE lockbox.audit_log;

-- regress_reads_indexes(question): true when the question's plan reads
-- lockbox.request and lockbox.audit_log through indexes only, and costs less
-- than jit_above_cost; else the offending plan lines
CREATE FUNCTION public.regress_reads_indexes(question text) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
	line	text;
	bad		text := '';
	cost	float8;
	plan	json;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || question LOOP
		IF line ~ 'Seq Scan on (request|audit_log)\M' THEN
			bad := bad || btrim(line) || '; ';
		END IF;
	END LOOP;
	EXECUTE 'EXPLAIN (FORMAT JSON) ' || question INTO plan;
	cost := (plan -> 0 -> 'Plan' ->> 'Total Cost')::float8;
	IF cost >= current_setting('jit_above_cost')::float8 THEN
		bad := bad || 'costs ' || cost || ', JIT would compile it; ';
	END IF;
	RETURN CASE WHEN bad = '' THEN 'indexes only' ELSE bad END;
END
$fn$;
GRANT EXECUTE ON FUNCTION public.regress_reads_indexes(text) TO PUBLIC;

SET jit = on;
-- an approver bound to one tenant, and one bound to three
SET ROLE regress_hist_app;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.requests WHERE state = 'pending_approval'$$) AS pending_approval;
SELECT count(*) AS pending_approval FROM lockbox.requests WHERE state = 'pending_approval';
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.requests WHERE tenant = 'regress_hist_t1' AND created_at > now() - interval '1 day'$$) AS tenant_day;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.requests ORDER BY id DESC LIMIT 10$$) AS latest_requests;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.access_log WHERE at > now() - interval '1 hour'$$) AS access_hour;
SELECT count(*) AS access_hour FROM lockbox.access_log WHERE at > now() - interval '1 hour';
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.access_log ORDER BY at DESC LIMIT 20$$) AS latest_access;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.active_access$$) AS active_access;
RESET ROLE;
SET ROLE regress_hist_app2;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.requests WHERE state = 'pending_approval'$$) AS pending_approval;
SELECT count(*) AS pending_approval FROM lockbox.requests WHERE state = 'pending_approval';
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.access_log WHERE at > now() - interval '1 hour'$$) AS access_hour;
RESET ROLE;
-- engineers: their own
SET ROLE regress_hist_eng2;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.requests ORDER BY id DESC LIMIT 10$$) AS own_latest;
SELECT count(*) AS own_latest FROM (SELECT * FROM lockbox.requests ORDER BY id DESC LIMIT 10) AS r
 WHERE requester = 'regress_hist_eng2';
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.access_log ORDER BY at DESC LIMIT 20$$) AS own_access;
RESET ROLE;
-- reviewers (auditors see what reviewers see)
SET ROLE regress_hist_rev;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.requests WHERE state = 'pending_approval'$$) AS pending_approval;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.requests ORDER BY id DESC LIMIT 10$$) AS latest_requests;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.requests WHERE id = 12345$$) AS one_request;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.audit WHERE request_id = 1000$$) AS its_audit;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.access_log ORDER BY at DESC LIMIT 20$$) AS latest_access;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.access_log WHERE tenant = 'regress_hist_t2' AND at > now() - interval '1 hour'$$) AS tenant_hour;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.active_access$$) AS active_access;
RESET ROLE;

-- Each role sees exactly its rows, newest first, also through LIMIT: an
-- approver of one tenant, of three, of six (more than the four tenants an
-- approver's branches read one by one, one of them without any row), of all
-- fifty; an engineer; a reviewer.  regress_hist_expect holds, for each,
-- what lockbox.requests and lockbox.access_log must show (ids, seqs), newest
-- first, computed from the tables.
SELECT lockbox_add_tenant('regress_hist_t0');
SELECT count(lockbox_add_approver(t, 'regress_hist_app6')) AS bound
  FROM unnest(ARRAY['regress_hist_t0', 'regress_hist_t1', 'regress_hist_t2',
					'regress_hist_t3', 'regress_hist_t4', 'regress_hist_t5']) AS t;
SELECT count(lockbox_add_approver('regress_hist_t' || i, 'regress_hist_app50')) AS bound
  FROM generate_series(1, 50) AS i;
CREATE TEMPORARY TABLE regress_hist_expect AS
SELECT v.role, 'requests' AS view, ARRAY(
		SELECT r.id FROM lockbox.request r
		 WHERE v.role = 'regress_hist_rev' OR r.requester::text = v.role
			OR r.tenant = ANY (v.tenants) ORDER BY r.id DESC) AS ids,
	   ARRAY(SELECT r.id FROM lockbox.request r
			  WHERE v.role = 'regress_hist_rev' OR r.requester::text = v.role
				 OR r.tenant = ANY (v.tenants) ORDER BY r.id DESC LIMIT 10) AS newest
  FROM (VALUES ('regress_hist_app', ARRAY['regress_hist_t1']),
			   ('regress_hist_app2', ARRAY['regress_hist_t1', 'regress_hist_t2', 'regress_hist_t3']),
			   ('regress_hist_app6', ARRAY['regress_hist_t0', 'regress_hist_t1', 'regress_hist_t2',
										   'regress_hist_t3', 'regress_hist_t4', 'regress_hist_t5']),
			   ('regress_hist_app50', ARRAY(SELECT 'regress_hist_t' || i FROM generate_series(1, 50) AS i)),
			   ('regress_hist_eng2', NULL),
			   ('regress_hist_rev', NULL)) AS v (role, tenants)
UNION ALL
SELECT v.role, 'access_log', ARRAY(
		SELECT a.seq FROM lockbox.audit_log a
		 WHERE a.event IN ('access', 'refused')
		   AND (v.role = 'regress_hist_rev' OR a.actor = v.role OR a.tenant = ANY (v.tenants))
		 ORDER BY a.at DESC),
	   ARRAY(SELECT a.seq FROM lockbox.audit_log a
			  WHERE a.event IN ('access', 'refused')
				AND (v.role = 'regress_hist_rev' OR a.actor = v.role OR a.tenant = ANY (v.tenants))
			  ORDER BY a.at DESC LIMIT 20)
  FROM (VALUES ('regress_hist_app', ARRAY['regress_hist_t1']),
			   ('regress_hist_app2', ARRAY['regress_hist_t1', 'regress_hist_t2', 'regress_hist_t3']),
			   ('regress_hist_app6', ARRAY['regress_hist_t0', 'regress_hist_t1', 'regress_hist_t2',
										   'regress_hist_t3', 'regress_hist_t4', 'regress_hist_t5']),
			   ('regress_hist_app50', ARRAY(SELECT 'regress_hist_t' || i FROM generate_series(1, 50) AS i)),
			   ('regress_hist_eng2', NULL),
			   ('regress_hist_rev', NULL)) AS v (role, tenants);
GRANT SELECT ON regress_hist_expect TO PUBLIC;
SELECT role, view, cardinality(ids) AS visible, cardinality(newest) AS newest
  FROM regress_hist_expect WHERE role <> 'regress_hist_rev' ORDER BY role, view;
CREATE FUNCTION pg_temp.regress_hist_shows(role text) RETURNS TABLE (view text, all_rows boolean, newest boolean)
LANGUAGE plpgsql AS $fn$
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', role);
	RETURN QUERY
	SELECT 'requests',
		   ARRAY(SELECT r.id FROM lockbox.requests r) = e.ids
		   AND ARRAY(SELECT r.id FROM lockbox.requests r WHERE r.id > 0 ORDER BY r.id DESC) = e.ids,
		   ARRAY(SELECT r.id FROM lockbox.requests r ORDER BY r.id DESC LIMIT 10) = e.newest
	  FROM regress_hist_expect e WHERE e.role = regress_hist_shows.role AND e.view = 'requests'
	UNION ALL
	SELECT 'access_log',
		   ARRAY(SELECT a.seq FROM lockbox.access_log a) = e.ids,
		   ARRAY(SELECT a.seq FROM lockbox.access_log a ORDER BY a.at DESC LIMIT 20) = e.newest
	  FROM regress_hist_expect e WHERE e.role = regress_hist_shows.role AND e.view = 'access_log';
	RESET ROLE;
END
$fn$;
SELECT r.role, s.* FROM unnest(ARRAY['regress_hist_app', 'regress_hist_app2', 'regress_hist_app6',
									 'regress_hist_app50', 'regress_hist_eng2', 'regress_hist_rev']) AS r (role),
	   LATERAL pg_temp.regress_hist_shows(r.role) AS s
 ORDER BY 1, 2;
-- an approver of six tenants: indexes only (that the newest rows are read in
-- order, without a sort, is for test/t/034_history_order.pl, over a vacuumed
-- history)
SET ROLE regress_hist_app6;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.requests ORDER BY id DESC LIMIT 10$$) AS latest_requests;
SELECT public.regress_reads_indexes($$SELECT * FROM lockbox.access_log ORDER BY at DESC LIMIT 20$$) AS latest_access;
RESET ROLE;

-- A caller's own function sees only the rows the view shows the caller: the
-- view is still a barrier, although it is a UNION ALL inside.
CREATE FUNCTION public.regress_peek(tenant text, requester name) RETURNS boolean
	LANGUAGE plpgsql COST 0.0000001 AS $fn$
BEGIN
	IF requester <> current_user THEN
		RAISE NOTICE 'saw a request of %', requester;
	END IF;
	RETURN true;
END
$fn$;
GRANT EXECUTE ON FUNCTION public.regress_peek(text, name) TO PUBLIC;
SET ROLE regress_hist_eng2;
SELECT count(*) AS own FROM lockbox.requests WHERE public.regress_peek(tenant, requester);
SELECT count(*) AS own FROM lockbox.access_log WHERE public.regress_peek(tenant, engineer);
RESET ROLE;
-- A reviewer's (an auditor's) access log of the last hour: its rows joined
-- to their statements (lockbox.audit_statement) under the union, through a
-- cache per statement (Memoize), when lockbox.audit_log has statistics of
-- its own (1.4 joined them by hash above the union, where the planner knows
-- nothing of the statements, and sorted them after the join).  2,400 access
-- rows of the last hour naming 40 statements, written in time order, as the
-- log is; spans of their last statement (last_at_usec) from 0 to 30 years.
INSERT INTO lockbox.audit_statement (digest, relation, command, query)
SELECT sha256(convert_to('regress_hist statement ' || j, 'UTF8')),
	   'public.regress_hist_data', 'SELECT', 'SELECT * FROM regress_hist_data -- ' || j
  FROM generate_series(1, 40) AS j;
INSERT INTO lockbox.audit_log (seq, at, session_user_name, actor, event,
		request_id, tenant, parents, hash, statement_id, pid, statements, last_at_usec)
SELECT nextval('lockbox.audit_seq'), now() - (2401 - i) * interval '1 second', 'regress_hist_eng',
	   'regress_hist_eng', 'access', NULL, 'regress_hist_t' || (1 + i % 50), '{}',
	   sha256(i::text::bytea),
	   (SELECT s.id FROM lockbox.audit_statement s
		 WHERE s.digest = sha256(convert_to('regress_hist statement ' || (1 + i % 40), 'UTF8'))),
	   4242, 1 + i % 7,
	   CASE i % 4 WHEN 0 THEN 0 WHEN 1 THEN i::bigint * 1234567 WHEN 2 THEN i::bigint * 987654321
			ELSE 946080000000000 - i END
  FROM generate_series(1, 2400) AS i;
ANALYZE lockbox.audit_log;
-- whether the question's plan looked its statements up through a cache
-- (Memoize nodes that hit at least ten times as often as they missed)
CREATE FUNCTION pg_temp.regress_statements_cached(question text) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
	plan	jsonb;
	hits	bigint;
	misses	bigint;
BEGIN
	EXECUTE 'EXPLAIN (ANALYZE, TIMING OFF, SUMMARY OFF, FORMAT JSON) ' || question INTO plan;
	SELECT coalesce(sum((n ->> 'Cache Hits')::bigint), 0),
		   coalesce(sum((n ->> 'Cache Misses')::bigint), 0)
	  INTO hits, misses
	  FROM jsonb_path_query(plan, 'strict $.**') AS n
	 WHERE jsonb_typeof(n) = 'object' AND n ->> 'Node Type' = 'Memoize';
	RETURN hits > 0 AND hits >= 10 * misses;
END
$fn$;
SELECT count(*) AS hour_rows FROM lockbox.audit_log
 WHERE event IN ('access', 'refused') AND at > now() - interval '1 hour' \gset
-- whether the question's execution pruned every partition of a branch's
-- scan of lockbox.audit_log when it started (it did not set up the scans)
CREATE FUNCTION pg_temp.regress_branch_pruned(question text) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
	plan	jsonb;
BEGIN
	EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT JSON) ' || question INTO plan;
	RETURN EXISTS (SELECT 1 FROM jsonb_path_query(plan, 'strict $.**') AS n
					WHERE jsonb_typeof(n) = 'object'
					  AND n ->> 'Node Type' IN ('Append', 'Merge Append')
					  AND (n ->> 'Subplans Removed')::int > 0
					  AND jsonb_array_length(coalesce(n -> 'Plans', '[]')) = 0);
END
$fn$;
-- (1.6) the reviewers' and auditors' branch is not set up for an engineer:
-- its partitions are pruned when the question starts
SET ROLE regress_hist_eng2;
SELECT pg_temp.regress_branch_pruned($$SELECT * FROM lockbox.access_log ORDER BY at DESC LIMIT 20$$) AS reviewers_branch_pruned;
RESET ROLE;
SET ROLE regress_hist_rev;
SELECT pg_temp.regress_statements_cached($$SELECT * FROM lockbox.access_log WHERE at > now() - interval '1 hour'$$) AS hour_statements_cached;
-- (1.6) a statement's parts: none for these rows
SELECT count(*) FILTER (WHERE parameters IS NULL AND within_query IS NULL
						  AND parameters_length IS NULL AND parameters_sha256 IS NULL
						  AND within_length IS NULL AND within_sha256 IS NULL) = count(*) AS no_parts
  FROM lockbox.access_log
 WHERE query LIKE 'SELECT * FROM regress_hist_data -- %' AND at > now() - interval '1 hour';
SELECT count(*) = :hour_rows AS all_rows,
	   count(*) FILTER (WHERE query LIKE 'SELECT * FROM regress_hist_data -- %'
						  AND relation = 'public.regress_hist_data') AS with_statement
  FROM lockbox.access_log WHERE at > now() - interval '1 hour';
RESET ROLE;
-- the view's last_at: at plus last_at_usec microseconds
SELECT count(*) AS rows,
	   count(*) FILTER (WHERE v.last_at = a.at + make_interval(secs => a.last_at_usec / 1000000.0)
						  AND v.last_at - v.at = a.last_at_usec * interval '1 microsecond'
						  AND v.statements = a.statements AND v.pid = a.pid
						  AND v.query_length = octet_length(v.query)) AS as_stored
  FROM lockbox.access_log v JOIN lockbox.audit_log a ON a.seq = v.seq
 WHERE v.query LIKE 'SELECT * FROM regress_hist_data -- %' AND v.at > now() - interval '1 hour';
ROLLBACK;

DROP ROLE regress_hist_eng, regress_hist_eng2, regress_hist_rev,
	regress_hist_app, regress_hist_app2, regress_hist_app6, regress_hist_app50;

--
-- Verification from a trusted anchor on: the check a day after the last one
-- reads the rows written since, not the whole log.
--
SELECT max(seq) AS anchor_seq FROM lockbox.audit_log \gset
SELECT encode(hash, 'hex') AS anchor_hash FROM lockbox.audit_log
 WHERE seq = :anchor_seq \gset
SELECT lockbox_add_tenant('regress_hist_a'), lockbox_add_tenant('regress_hist_b'),
	   lockbox_add_tenant('regress_hist_c');
SELECT ok, rows_checked = (SELECT count(*) FROM lockbox.audit_log
							WHERE seq >= :anchor_seq) AS only_rows_from_the_anchor,
	   rows_checked < (SELECT count(*) FROM lockbox.audit_log) AS fewer_than_all,
	   first_bad_seq
  FROM lockbox_verify_audit(:anchor_seq, :'anchor_hash');
-- an anchor that is not what the log holds
SELECT ok, first_bad_seq = :anchor_seq AS anchor_named, rows_checked
  FROM lockbox_verify_audit(:anchor_seq, repeat('0', 64));
SELECT ok, first_bad_seq = :anchor_seq + 1000000 AS anchor_named
  FROM lockbox_verify_audit(:anchor_seq + 1000000, :'anchor_hash');
-- a row after the anchor edited by a superuser who switched the guard off
SELECT min(seq) AS edited_seq FROM lockbox.audit_log WHERE seq > :anchor_seq \gset
SELECT detail AS original_detail FROM lockbox.audit_log WHERE seq = :edited_seq \gset
CALL regress_audit_guard('D');
UPDATE lockbox.audit_log SET detail = detail || '{"note": "rewritten"}'
 WHERE seq = :edited_seq;
CALL regress_audit_guard('A');
SELECT ok, first_bad_seq = :edited_seq AS edited_row_named
  FROM lockbox_verify_audit(:anchor_seq, :'anchor_hash');
CALL regress_audit_guard('D');
UPDATE lockbox.audit_log SET detail = :'original_detail' WHERE seq = :edited_seq;
CALL regress_audit_guard('A');
SELECT ok FROM lockbox_verify_audit(:anchor_seq, :'anchor_hash');
-- bad arguments
CALL regress_try('SELECT lockbox_verify_audit(NULL, repeat(''0'', 64))');
CALL regress_try('SELECT lockbox_verify_audit(1, ''not a hash'')');
SELECT lockbox_remove_tenant('regress_hist_a'), lockbox_remove_tenant('regress_hist_b'),
	   lockbox_remove_tenant('regress_hist_c');
