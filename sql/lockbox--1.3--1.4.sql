/* lockbox--1.3--1.4.sql: upgrade lockbox from 1.3 to 1.4 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.4'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, 1.1 to 1.2, 1.2 to 1.3, then this one): a fresh 1.4 and an
-- upgraded 1.0, 1.1, 1.2 or 1.3 are the same by construction.
------------------------------------------------------------------------------
-- History: the newest requests and statements, without a time range, of an
-- engineer and of an approver (README "History and retention").
--
-- A security_barrier view is a subquery, and a subquery under an ORDER BY is
-- planned for all of its rows: the LIMIT of "ORDER BY id DESC LIMIT n" never
-- reaches it.  Each branch of lockbox.requests and lockbox.access_log is
-- therefore planned as if all its rows were read, and for one tenant's or
-- one engineer's rows (spread over the table) a bitmap scan and a sort cost
-- less in total than a scan of the (tenant, id) index in order, however small
-- the estimate: until 1.3 such a branch sorted all its rows.  And "tenant =
-- ANY (their tenants)" has no ordered path at all.
--
-- From 1.4 those rows come from branches whose ordered plan is the cheapest
-- one even for all rows:
--   - an engineer's own, and each of up to 4 of an approver's tenants (a
--     "slot": those whose newest request, or statement, is the oldest, or who
--     have none), are read from an index in order, index only (the index
--     carries what visibility and the everyday filters test: requester or
--     tenant, state, created_at; actor or tenant, and seq, for statements),
--     and each row read is looked up by its key (a LATERAL subquery: a nested
--     loop, so only the rows read are looked up).  An index-only scan in
--     order costs less than anything that sorts, so it is planned, and a
--     LIMIT reads n entries.
--   - an approver's other tenants (the most recently active) are read from
--     the index in time (the primary key, the access log's "at"), from their
--     newest row down, filtered by a test that no index serves and that the
--     planner takes to keep nearly every row (array_position(...) IS NOT
--     NULL): as for a reviewer, reading in order is the cheapest plan.  It
--     reads other tenants' rows between theirs.
--   - an approver's open requests (few, whatever the history): one branch,
--     as for reviewers.
-- The approver's tenants, ranked by their newest row, and the caller's OID
-- are computed once per query (CTEs of the views).
------------------------------------------------------------------------------

-- whether the calling role approves for an approver role of lockbox.approver
-- (is it, or has its privileges)
CREATE FUNCTION lockbox.approves(approver pg_catalog.regrole) RETURNS boolean
	LANGUAGE sql STABLE PARALLEL UNSAFE
	AS $$ SELECT pg_catalog.pg_has_role(pg_catalog."current_user"(),
										approver::pg_catalog.oid, 'USAGE') $$;
REVOKE ALL ON FUNCTION lockbox.approves(pg_catalog.regrole) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.approves(pg_catalog.regrole)
	TO lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor;
COMMENT ON FUNCTION lockbox.approves(pg_catalog.regrole) IS
	'Whether the calling role is the approver role given or has its privileges. PARALLEL UNSAFE on purpose: lockbox.requests and lockbox.access_log, which call it, are planned without parallel workers (their everyday questions read few rows, and a Gather would start workers for branches that never run).';

-- A tenant's requests, an engineer's, in id order, index only: what the
-- approvers' slots and the engineers' branch read.
DROP INDEX lockbox.request_tenant_idx;
CREATE INDEX request_tenant_idx ON lockbox.request (tenant, id)
	INCLUDE (requester, state, created_at);
DROP INDEX lockbox.request_requester_idx;
CREATE INDEX request_requester_idx ON lockbox.request (requester, id)
	INCLUDE (tenant, state, created_at);

-- A tenant's statements, an engineer's, in time order, index only: what the
-- approvers' slots and the engineers' branch read (each partition's, those
-- to come and those there are).
CREATE OR REPLACE FUNCTION lockbox.audit_partition_protect(part pg_catalog.regclass)
	RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	name text := (SELECT c.relname FROM pg_class c WHERE c.oid = part);
BEGIN
	EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY (seq)', part, name || '_pkey');
	EXECUTE format('CREATE INDEX %I ON %s (request_id)', name || '_request_idx', part);
	EXECUTE format('CREATE INDEX %I ON %s (at) WHERE event = ANY (''{access,refused}''::text[])',
				   name || '_access_at_idx', part);
	EXECUTE format('CREATE INDEX %I ON %s (tenant, at) INCLUDE (actor, seq)'
				   ' WHERE event = ANY (''{access,refused}''::text[])',
				   name || '_access_tenant_idx', part);
	EXECUTE format('CREATE INDEX %I ON %s (actor, at) INCLUDE (tenant, seq)'
				   ' WHERE event = ANY (''{access,refused}''::text[])',
				   name || '_access_actor_idx', part);
	EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %s'
				   ' FOR EACH STATEMENT EXECUTE FUNCTION lockbox.audit_log_append_only()', part);
	EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER audit_log_no_truncate', part);
	EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER audit_log_append_only', part);
	EXECUTE format('ALTER TABLE %s SET (parallel_workers = 0)', part);
	EXECUTE format('ALTER TABLE %s ALTER COLUMN actor SET (n_distinct = -0.001)', part);
	EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', part);
END
$$;

DO $parts$
DECLARE
	p record;
BEGIN
	FOR p IN SELECT c.relname FROM pg_catalog.pg_inherits i
			   JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
			  WHERE i.inhparent OPERATOR(pg_catalog.=) 'lockbox.audit_log'::pg_catalog.regclass
			  ORDER BY c.relname LOOP
		EXECUTE pg_catalog.format('DROP INDEX IF EXISTS lockbox.%I', p.relname || '_access_tenant_idx');
		EXECUTE pg_catalog.format('CREATE INDEX %I ON lockbox.%I (tenant, at) INCLUDE (actor, seq)'
					   ' WHERE event OPERATOR(pg_catalog.=) ANY (''{access,refused}''::pg_catalog.text[])',
					   p.relname || '_access_tenant_idx', p.relname);
		EXECUTE pg_catalog.format('DROP INDEX IF EXISTS lockbox.%I', p.relname || '_access_actor_idx');
		EXECUTE pg_catalog.format('CREATE INDEX %I ON lockbox.%I (actor, at) INCLUDE (tenant, seq)'
					   ' WHERE event OPERATOR(pg_catalog.=) ANY (''{access,refused}''::pg_catalog.text[])',
					   p.relname || '_access_actor_idx', p.relname);
	END LOOP;
END
$parts$;

-- The views.  Written out by a loop for their slots (the branches of each of
-- an approver's least recently active tenants); what each branch reads, in
-- the comment above.
DO $views$
DECLARE
	slots CONSTANT integer := 4;
	-- lockbox.requests: the columns of a settled request (its stored state
	-- is its state) and of an open one (its state as of now), of request "r"
	settled CONSTANT text := $c$
		   r.access, r.duration, r.state, r.created_at, NULL::timestamptz,
		   r.reviewer::name, r.reviewed_at, r.approved_at, r.access_ends_at,
		   r.closed_at, r.close_reason,
		   (SELECT pg_catalog.count(*) FROM lockbox.decision d
			 WHERE d.request_id OPERATOR(pg_catalog.=) r.id
			   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer$c$;
	open CONSTANT text := $c$
		   r.access, r.duration, o.state, r.created_at,
		   CASE WHEN o.state IN ('pending_review', 'pending_approval') THEN r.deadline END,
		   r.reviewer::name, r.reviewed_at, r.approved_at, r.access_ends_at,
		   CASE o.state
			   WHEN r.state THEN r.closed_at
			   WHEN 'expired' THEN r.deadline
			   WHEN 'closed' THEN r.access_ends_at
			   ELSE (SELECT v.revoked_at FROM lockbox.revocation v
					  WHERE v.request_id OPERATOR(pg_catalog.=) r.id)
		   END,
		   CASE o.state
			   WHEN r.state THEN r.close_reason
			   WHEN 'closed' THEN 'window_elapsed'
			   WHEN 'revoked' THEN 'revoked'
		   END,
		   (SELECT pg_catalog.count(*) FROM lockbox.decision d
			 WHERE d.request_id OPERATOR(pg_catalog.=) r.id
			   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer
	  FROM lockbox.request r,
		   LATERAL (SELECT lockbox.request_state(r.state, r.deadline, r.access_ends_at,
					EXISTS (SELECT 1 FROM lockbox.revocation v
							 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
					pg_catalog.statement_timestamp()) AS state) o$c$;
	is_open CONSTANT text := $c$r.state OPERATOR(pg_catalog.=) ANY (ARRAY['pending_review', 'pending_approval', 'approved'])$c$;
	is_settled CONSTANT text := $c$r.state OPERATOR(pg_catalog.<>) ALL (ARRAY['pending_review', 'pending_approval', 'approved'])$c$;
	-- lockbox.access_log: the columns of an audit row "a" each branch passes up
	access CONSTANT text := $c$a.at, a.actor, a.request_id, a.tenant, a.event, a.detail,
		   a.statement_id, a.statements, a.last_at_usec, a.reason, a.node,
		   a.query_length, a.query_sha256, a.session_user_name, a.pid, a.seq$c$;
	is_access CONSTANT text := $c$a.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])$c$;
	not_me CONSTANT text := $c$a.actor OPERATOR(pg_catalog.<>) pg_catalog."current_user"()::pg_catalog.text COLLATE pg_catalog."default"$c$;
	-- the columns of request k that its indexes (by tenant, by requester)
	-- do not carry, looked up by id: a LATERAL subquery that the planner
	-- cannot join but with a nested loop, so that only the rows read from
	-- the index in order are looked up
	request_row CONSTANT text := $c$SELECT r.reason, r.ticket, r.tables, r.access, r.duration,
				   r.reviewer, r.reviewed_at, r.approved_at, r.access_ends_at,
				   r.closed_at, r.close_reason
			  FROM lockbox.request r
			 WHERE r.id OPERATOR(pg_catalog.=) k.id OFFSET 0$c$;
	-- the same for audit row k, by its time (its partition) and seq
	access_row CONSTANT text := $c$SELECT a.request_id, a.event, a.detail, a.statement_id,
				   a.statements, a.last_at_usec, a.reason, a.node, a.query_length,
				   a.query_sha256, a.session_user_name, a.pid
			  FROM lockbox.audit_log a
			 WHERE a.at OPERATOR(pg_catalog.=) k.at
			   AND a.seq OPERATOR(pg_catalog.=) k.seq OFFSET 0$c$;
	request_slots text;
	access_slots text;
BEGIN
	SELECT string_agg(format($b$
	UNION ALL
	-- approvers: the settled requests of their tenant %1$s (by the tenant's
	-- newest request, oldest first), read index only in id order; the rest
	-- of each row looked up by its id
	(SELECT k.id, k.tenant, k.requester::name, r.reason, r.ticket, r.tables,
		   r.access, r.duration, k.state, k.created_at, NULL::timestamptz,
		   r.reviewer::name, r.reviewed_at, r.approved_at, r.access_ends_at,
		   r.closed_at, r.close_reason,
		   (SELECT pg_catalog.count(*) FROM lockbox.decision d
			 WHERE d.request_id OPERATOR(pg_catalog.=) k.id
			   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer
	  FROM lockbox.request k,
		   LATERAL (%2$s) r
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND k.tenant OPERATOR(pg_catalog.=) (SELECT m.tenant FROM mine m
				 WHERE m.n OPERATOR(pg_catalog.=) %1$s)
	   AND k.requester::pg_catalog.oid OPERATOR(pg_catalog.<>) (SELECT c.me FROM caller c)
	   AND k.state OPERATOR(pg_catalog.<>) ALL (ARRAY['pending_review', 'pending_approval', 'approved'])
	 ORDER BY k.id DESC)$b$, i, request_row), '' ORDER BY i)
	  INTO request_slots FROM generate_series(1, slots) AS i;

	EXECUTE format($v$
CREATE OR REPLACE VIEW lockbox.requests WITH (security_barrier) AS
WITH caller AS MATERIALIZED (
	-- the caller's OID, looked up once (lockbox.me() is a query of its own)
	SELECT lockbox.me() AS me),
mine AS MATERIALIZED (
	-- an approver's tenants: beyond %6$s of them, those with the oldest newest
	-- request first, those without any before them
	SELECT t.tenant, t.newest,
		   pg_catalog.row_number() OVER (ORDER BY t.newest NULLS FIRST, t.tenant) AS n
	  FROM (SELECT m.tenant,
				   CASE WHEN m.tenants OPERATOR(pg_catalog.>) %6$s
						THEN (SELECT pg_catalog.max(q.id) FROM lockbox.request q
							   WHERE q.tenant OPERATOR(pg_catalog.=) m.tenant) END AS newest
			  FROM (SELECT ap.tenant, pg_catalog.count(*) OVER () AS tenants
					  FROM (SELECT DISTINCT ap.tenant FROM lockbox.approver ap
							 WHERE lockbox.approves(ap.approver)) AS ap) AS m) AS t)
SELECT * FROM (
	-- reviewers and auditors: every request, settled (the stored state is the state)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,%1$s
	  FROM lockbox.request r
	 WHERE (SELECT lockbox.sees_all())
	   AND %3$s
	 ORDER BY r.id DESC)
	UNION ALL
	-- reviewers and auditors: every request, open (the state as of now)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,%2$s
	 WHERE (SELECT lockbox.sees_all())
	   AND %4$s
	 ORDER BY r.id DESC)
	UNION ALL
	-- engineers: their own, settled (the stored state is the state), read
	-- index only in id order; the rest of each row looked up by its id
	(SELECT k.id, k.tenant, k.requester::name, r.reason, r.ticket, r.tables,
		   r.access, r.duration, k.state, k.created_at, NULL::timestamptz,
		   r.reviewer::name, r.reviewed_at, r.approved_at, r.access_ends_at,
		   r.closed_at, r.close_reason,
		   (SELECT pg_catalog.count(*) FROM lockbox.decision d
			 WHERE d.request_id OPERATOR(pg_catalog.=) k.id
			   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer
	  FROM lockbox.request k,
		   LATERAL (%7$s) r
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND k.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT c.me FROM caller c)
	   AND k.state OPERATOR(pg_catalog.<>) ALL (ARRAY['pending_review', 'pending_approval', 'approved'])
	 ORDER BY k.id DESC)
	UNION ALL
	-- engineers: their own, open (the state as of now)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,%2$s
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND r.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT c.me FROM caller c)
	   AND %4$s
	 ORDER BY r.id DESC)
	UNION ALL
	-- approvers: their tenants' open requests (the state as of now)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,%2$s
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND EXISTS (SELECT 1 FROM mine m)
	   AND r.requester::pg_catalog.oid OPERATOR(pg_catalog.<>) (SELECT c.me FROM caller c)
	   AND r.tenant OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT m.tenant FROM mine m))
	   AND %4$s
	 ORDER BY r.id DESC)%5$s
	UNION ALL
	-- approvers: the settled requests of their other tenants (the most
	-- recently active), read in id order through every tenant's: a test
	-- that no index serves, which the planner takes to keep nearly every row
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,%1$s
	  FROM lockbox.request r
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND EXISTS (SELECT 1 FROM mine m WHERE m.n OPERATOR(pg_catalog.>) %6$s)
	   AND r.requester::pg_catalog.oid OPERATOR(pg_catalog.<>) (SELECT c.me FROM caller c)
	   AND pg_catalog.array_position(ARRAY(SELECT m.tenant FROM mine m
				 WHERE m.n OPERATOR(pg_catalog.>) %6$s), r.tenant) IS NOT NULL
	   -- (from their newest request down: the newer ones are others')
	   AND r.id OPERATOR(pg_catalog.<=) (SELECT pg_catalog.max(m.newest) FROM mine m
				 WHERE m.n OPERATOR(pg_catalog.>) %6$s)
	   AND %3$s
	 ORDER BY r.id DESC)
) AS r (id, tenant, requester, reason, ticket, tables, access, duration, state,
		created_at, deadline, reviewer, reviewed_at, approved_at, access_ends_at,
		closed_at, close_reason, approvals)
 ORDER BY r.id DESC$v$, settled, open, is_settled, is_open, request_slots, slots, request_row);

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
SELECT a.at, a.actor::pg_catalog.name AS engineer, a.request_id, a.tenant,
	   COALESCE(s.relation, a.detail OPERATOR(pg_catalog.->>) 'relation') AS relation,
	   COALESCE(s.command, a.detail OPERATOR(pg_catalog.->>) 'command') AS command,
	   COALESCE(s.query, a.detail OPERATOR(pg_catalog.->>) 'query') AS query,
	   COALESCE(a.statements::pg_catalog.int8,
				(a.detail OPERATOR(pg_catalog.->>) 'statements')::pg_catalog.int8, 1) AS statements,
	   a.at OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs =>
		   COALESCE(a.last_at_usec,
					(a.detail OPERATOR(pg_catalog.->>) 'last_at_usec')::pg_catalog.int8, 0)
		   OPERATOR(pg_catalog./) 1000000.0) AS last_at,
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
	   a.seq
  FROM (
	-- reviewers and auditors: every row
	(SELECT %1$s
	  FROM lockbox.audit_log a
	 WHERE (SELECT lockbox.sees_all())
	   AND %2$s
	 ORDER BY a.at DESC)
	UNION ALL
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
 ORDER BY a.at DESC$v$, access, is_access, access_slots, slots, not_me, access_row);
END
$views$;

------------------------------------------------------------------------------
-- The relation whose relcache invalidations tell every backend, and hot
-- standbys replaying the commit, that who may access what has changed.  Up to
-- 1.3 that was lockbox.request_id_seq; but the request table's id default
-- names it, so each access change also threw away, in every backend, what
-- the lifecycle functions keep planned for writing requests.  Nothing reads
-- this one.
------------------------------------------------------------------------------
CREATE SEQUENCE lockbox.access_signal;
REVOKE ALL ON SEQUENCE lockbox.access_signal FROM PUBLIC;
COMMENT ON SEQUENCE lockbox.access_signal IS
	'Never read: its relcache invalidations tell each backend, and hot standbys, that access changed.';
