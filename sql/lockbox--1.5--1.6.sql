/* lockbox--1.5--1.6.sql: upgrade lockbox from 1.5 to 1.6 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.6'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, ..., 1.4 to 1.5, then this one): a fresh 1.6 and an upgraded
-- 1.0 to 1.5 are the same by construction.

------------------------------------------------------------------------------
-- Requests updated in place.
--
-- A transition rewrites its request's row (state, deadline, reviewer,
-- access window); PostgreSQL updates a row in place (HOT: no new index
-- entries, only the heap page's) when no column an index names changes, and
-- until 1.5 seven indexes of lockbox.request named the state or a deadline,
-- so every transition wrote an entry into each of them (26 of the 54 index
-- entries of a lifecycle).  Now:
--
--   - lockbox.request.final_state, a stored generated column: the state of
--     a settled request (denied, expired, cancelled, revoked, closed), NULL
--     while it is open.  A request's last transition changes it; the others
--     do not.  The indexes name it instead of the state: a settled
--     request's state is its final_state (an index condition), an open
--     request is one whose final_state is NULL (request_open_idx, partial).
--   - lockbox.open_request: the requests still open, with the time the
--     worker must look at each (the pending stage's deadline, the access
--     window's end), indexed: what the worker's deadline queries read.  The
--     trigger request_open_sync keeps it in step with every write of a
--     request's state, deadline or window (lockbox's own, an operator's
--     UPDATE, a restore's COPY); it is derived, so not dumped.
--   - No index of lockbox.request names state, deadline or access_ends_at
--     (not even in a predicate or an INCLUDE).  Pending and approval
--     transitions update the row in place; the one that settles it writes
--     one entry into each of the request's six indexes but request_open_idx.
--   - fillfactor 80: room on each page for a request's new versions.
------------------------------------------------------------------------------
ALTER TABLE lockbox.request SET (fillfactor = 80);
ALTER TABLE lockbox.request ADD COLUMN final_state text
	GENERATED ALWAYS AS (CASE WHEN state OPERATOR(pg_catalog.<>) ALL
			(ARRAY['pending_review', 'pending_approval', 'approved']) THEN state END) STORED;
COMMENT ON COLUMN lockbox.request.final_state IS
	'The state a settled request ended in; NULL while it is pending or approved. What the request''s indexes name instead of its state, so that the transitions before the last update the row in place.';

DROP INDEX lockbox.request_deadline_idx;
DROP INDEX lockbox.request_access_ends_idx;
DROP INDEX lockbox.request_state_idx;
DROP INDEX lockbox.request_open_idx;
DROP INDEX lockbox.request_tenant_idx;
DROP INDEX lockbox.request_requester_idx;
-- settled requests by state, newest first
CREATE INDEX request_final_state_idx ON lockbox.request (final_state, id)
	WHERE final_state IS NOT NULL;
-- open requests (an entry when filed, none when settled)
CREATE INDEX request_open_idx ON lockbox.request (id) WHERE final_state IS NULL;
-- a tenant's requests, an engineer's, in id order, index only
CREATE INDEX request_tenant_idx ON lockbox.request (tenant, id)
	INCLUDE (requester, final_state, created_at);
CREATE INDEX request_requester_idx ON lockbox.request (requester, id)
	INCLUDE (tenant, final_state, created_at);

CREATE TABLE lockbox.open_request (
	id		bigint PRIMARY KEY,		/* of lockbox.request */
	due		timestamptz				/* its pending stage's deadline, its window's end */
);
CREATE INDEX open_request_due_idx ON lockbox.open_request (due);
REVOKE ALL ON lockbox.open_request FROM PUBLIC;
ALTER TABLE lockbox.open_request SET (parallel_workers = 0);
COMMENT ON TABLE lockbox.open_request IS
	'The requests still pending or approved, each with the time the worker must look at it next (its pending stage''s deadline, its access window''s end). Kept by the trigger request_open_sync of lockbox.request; never written otherwise.';
INSERT INTO lockbox.open_request (id, due)
SELECT r.id, CASE WHEN r.state OPERATOR(pg_catalog.=) 'approved'
				  THEN r.access_ends_at ELSE r.deadline END
  FROM lockbox.request r
 WHERE r.final_state IS NULL;

CREATE FUNCTION lockbox.request_open_sync() RETURNS trigger
	AS 'MODULE_PATHNAME', 'lockbox_request_open_sync' LANGUAGE C;
REVOKE ALL ON FUNCTION lockbox.request_open_sync() FROM PUBLIC;
COMMENT ON FUNCTION lockbox.request_open_sync() IS
	'Trigger of lockbox.request: keeps lockbox.open_request in step with each request''s state, deadline and access window.';
CREATE TRIGGER request_open_sync
	AFTER INSERT OR UPDATE OF id, state, deadline, access_ends_at ON lockbox.request
	FOR EACH ROW EXECUTE FUNCTION lockbox.request_open_sync();
-- (also under session_replication_role = replica: a restore's COPY)
ALTER TABLE lockbox.request ENABLE ALWAYS TRIGGER request_open_sync;

-- lockbox.requests: as in 1.4, with final_state for the stored state of the
-- settled branches and final_state IS NULL for the open ones.
DO $views$
DECLARE
	slots CONSTANT integer := 4;
	-- lockbox.requests: the columns of a settled request (its stored state
	-- is its state) and of an open one (its state as of now), of request "r"
	settled CONSTANT text := $c$
		   r.access, r.duration, r.final_state, r.created_at, NULL::timestamptz,
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
	is_open CONSTANT text := $c$r.final_state IS NULL$c$;
	is_settled CONSTANT text := $c$r.final_state IS NOT NULL$c$;
	-- the columns of request k that its indexes (by tenant, by requester)
	-- do not carry, looked up by id: a LATERAL subquery that the planner
	-- cannot join but with a nested loop, so that only the rows read from
	-- the index in order are looked up
	request_row CONSTANT text := $c$SELECT r.reason, r.ticket, r.tables, r.access, r.duration,
				   r.reviewer, r.reviewed_at, r.approved_at, r.access_ends_at,
				   r.closed_at, r.close_reason
			  FROM lockbox.request r
			 WHERE r.id OPERATOR(pg_catalog.=) k.id OFFSET 0$c$;
	request_slots text;
BEGIN
	SELECT string_agg(format($b$
	UNION ALL
	-- approvers: the settled requests of their tenant %1$s (by the tenant's
	-- newest request, oldest first), read index only in id order; the rest
	-- of each row looked up by its id
	(SELECT k.id, k.tenant, k.requester::name, r.reason, r.ticket, r.tables,
		   r.access, r.duration, k.final_state, k.created_at, NULL::timestamptz,
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
	   AND k.final_state IS NOT NULL
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
		   r.access, r.duration, k.final_state, k.created_at, NULL::timestamptz,
		   r.reviewer::name, r.reviewed_at, r.approved_at, r.access_ends_at,
		   r.closed_at, r.close_reason,
		   (SELECT pg_catalog.count(*) FROM lockbox.decision d
			 WHERE d.request_id OPERATOR(pg_catalog.=) k.id
			   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer
	  FROM lockbox.request k,
		   LATERAL (%7$s) r
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND k.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT c.me FROM caller c)
	   AND k.final_state IS NOT NULL
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
END
$views$;

-- lockbox.active_access: the open requests (request_open_idx) that are approved
CREATE OR REPLACE VIEW lockbox.active_access WITH (security_barrier) AS
SELECT r.id AS request_id,
	   r.requester::name AS engineer,
	   r.tenant,
	   r.tables,
	   r.access,
	   r.approved_at AS starts_at,
	   r.access_ends_at AS ends_at
  FROM lockbox.request r
 WHERE r.final_state IS NULL
   AND r.state OPERATOR(pg_catalog.=) 'approved'
   AND lockbox.request_state(r.state, r.deadline, r.access_ends_at,
			EXISTS (SELECT 1 FROM lockbox.revocation v
					 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
			pg_catalog.statement_timestamp()) OPERATOR(pg_catalog.=) 'approved'
   AND (r.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT lockbox.me())
		OR (SELECT lockbox.sees_all())
		OR EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE ap.tenant OPERATOR(pg_catalog.=) r.tenant
				   AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE')));
