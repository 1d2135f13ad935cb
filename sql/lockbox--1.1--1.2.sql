/* lockbox--1.1--1.2.sql: upgrade lockbox from 1.1 to 1.2 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.2'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, then this one): a fresh 1.2 and an upgraded 1.0 or 1.1 are the
-- same by construction.

------------------------------------------------------------------------------
-- Replicas (README "Replicas").  Engineers' statements on a hot standby are
-- spooled there, as on the primary, and a lockbox process on the standby
-- hands them in to the primary through lockbox.forward_access, as a login
-- role of the group lockbox_forwarder that may do nothing else.  The primary
-- keeps how far it audited each spool file of each node in
-- lockbox.access_spool, in the same transaction as the audit rows.
------------------------------------------------------------------------------
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
				   WHERE rolname OPERATOR(pg_catalog.=) 'lockbox_forwarder') THEN
		CREATE ROLE lockbox_forwarder NOLOGIN;
	END IF;
END
$roles$;

-- progress keyed by node and file: the files spooled here (this server's
-- name, as lockbox.node_name or cluster_name give it, else 'primary') and
-- those each standby forwarded
ALTER TABLE lockbox.access_spool ADD COLUMN node text;
UPDATE lockbox.access_spool
   SET node = COALESCE(NULLIF(pg_catalog.current_setting('lockbox.node_name', true), ''),
					   NULLIF(pg_catalog.current_setting('cluster_name'), ''),
					   'primary');
ALTER TABLE lockbox.access_spool ALTER COLUMN node SET NOT NULL;
ALTER TABLE lockbox.access_spool DROP CONSTRAINT access_spool_pkey;
ALTER TABLE lockbox.access_spool ADD PRIMARY KEY (node, file);
COMMENT ON TABLE lockbox.access_spool IS
	'How far the access log audited each spool file: of this server (its node name) and of each standby that forwards to it, written in the same transaction as the audit rows.';

CREATE FUNCTION lockbox.forward_access(node text, file text, start bigint,
		records bytea, finished boolean DEFAULT false)
	RETURNS bigint AS 'MODULE_PATHNAME', 'lockbox_forward_access'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION lockbox.forward_access(text, text, bigint, bytea, boolean) FROM PUBLIC;
GRANT USAGE ON SCHEMA lockbox TO lockbox_forwarder;
GRANT EXECUTE ON FUNCTION lockbox.forward_access(text, text, bigint, bytea, boolean)
	TO lockbox_forwarder;
COMMENT ON FUNCTION lockbox.forward_access(text, text, bigint, bytea, boolean) IS
	'For standbys'' lockbox workers (role lockbox_forwarder), on the primary: audits the access records of spool file "file" of standby "node" (the caller''s login role name) from offset "start", once, and returns how far that file is audited; with records NULL only returns that (finished: forgets the file). Writes access and refused rows only.';

CREATE FUNCTION lockbox.standby_backlog_status(OUT node text, OUT pending_bytes bigint,
		OUT pending_files integer, OUT last_forward_at timestamptz,
		OUT last_error text, OUT last_error_at timestamptz)
	RETURNS record AS 'MODULE_PATHNAME', 'lockbox_standby_backlog'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION lockbox.standby_backlog_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.standby_backlog_status() TO lockbox_reviewer, lockbox_auditor;
COMMENT ON FUNCTION lockbox.standby_backlog_status() IS
	'On a standby: the engineers'' statements of this database waiting to be forwarded to the primary, in bytes and spool files, when the last were forwarded, and the last error. What lockbox.standby_backlog shows.';

CREATE VIEW lockbox.standby_backlog AS SELECT * FROM lockbox.standby_backlog_status();
REVOKE ALL ON lockbox.standby_backlog FROM PUBLIC;
GRANT SELECT ON lockbox.standby_backlog TO lockbox_reviewer, lockbox_auditor;
COMMENT ON VIEW lockbox.standby_backlog IS
	'On a standby: the access records of this database waiting to be forwarded to the primary (bytes, files), the last forward and the last error. When pending_bytes reaches lockbox.standby_backlog_max, engineers'' statements there are refused.';

------------------------------------------------------------------------------
-- A notification queued for the worker's NOTIFY is its id alone: the worker
-- reads the payload from lockbox.notification when it sends it.  (The copy
-- of the payload was a third of the WAL a transition wrote.)
------------------------------------------------------------------------------
ALTER TABLE lockbox.notify_outbox DROP COLUMN payload;

------------------------------------------------------------------------------
-- History: the everyday questions cost what they return, not the years of
-- history behind them (README "History and retention").
--
-- A security_barrier view is planned as a subquery of its own: a caller's
-- condition reaches its scans only when it is leakproof, and an ORDER BY
-- ... LIMIT outside it never does.  So lockbox.requests and
-- lockbox.access_log are written so that what they filter on is what their
-- indexes hold:
--   - visibility is one indexable condition per caller kind, each in a branch
--     of its own guarded by a constant test (a one-time filter: the branches
--     of other kinds never run): reviewers and auditors everything, engineers
--     requester = themselves, approvers tenant = their first tenant (an index
--     range in order) or one of their others (the last two branches run only
--     for a caller bound to one, or more than one, tenant);
--   - a request's state is its stored state for settled requests (the state
--     column itself, so that state = 'denied' or state = 'pending_approval'
--     is an index condition), and lockbox.request_state only for the open
--     ones (pending or approved), which are few whatever the history;
--   - each branch is ordered newest first, and the view too, so that
--     ORDER BY id DESC LIMIT n (requests) and ORDER BY at DESC LIMIT n
--     (access_log) read n rows from a merge of index scans.
-- The whole UNION ALL is wrapped in one outer SELECT: the security_barrier
-- of a view whose top is a UNION ALL would be flattened away with it.
------------------------------------------------------------------------------
-- The planner's estimates: one engineer files a small share of the
-- requests, and runs a small share of the statements, whatever the history;
-- without this a bench or a young installation with few engineers makes it
-- scan in id order instead of by requester.  The everyday questions read few
-- rows: parallel workers would cost more to start than they save.
ALTER TABLE lockbox.request ALTER COLUMN requester SET (n_distinct = -0.001);
ALTER TABLE lockbox.audit_log ALTER COLUMN actor SET (n_distinct = -0.001);
ALTER TABLE lockbox.request SET (parallel_workers = 0);
ALTER TABLE lockbox.audit_log SET (parallel_workers = 0);

CREATE INDEX request_requester_idx ON lockbox.request (requester, id);
CREATE INDEX request_tenant_idx ON lockbox.request (tenant, id);
CREATE INDEX request_tenant_created_idx ON lockbox.request (tenant, created_at);
CREATE INDEX request_state_idx ON lockbox.request (state, id);
CREATE INDEX request_open_idx ON lockbox.request (id)
	WHERE state OPERATOR(pg_catalog.=) ANY (ARRAY['pending_review', 'pending_approval', 'approved']);
-- the access log's rows, by time: all, by tenant, by engineer
CREATE INDEX audit_log_access_at_idx ON lockbox.audit_log (at)
	WHERE event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[]);
CREATE INDEX audit_log_access_tenant_idx ON lockbox.audit_log (tenant, at)
	WHERE event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[]);
CREATE INDEX audit_log_access_actor_idx ON lockbox.audit_log (actor, at)
	WHERE event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[]);

CREATE OR REPLACE VIEW lockbox.requests WITH (security_barrier) AS
SELECT * FROM (
	-- reviewers and auditors: every request, settled (the stored state is the state)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,
		   r.access, r.duration, r.state, r.created_at, NULL::timestamptz,
		   r.reviewer::name, r.reviewed_at, r.approved_at, r.access_ends_at,
		   r.closed_at, r.close_reason,
		   (SELECT pg_catalog.count(*) FROM lockbox.decision d
			 WHERE d.request_id OPERATOR(pg_catalog.=) r.id
			   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer
	  FROM lockbox.request r
	 WHERE (SELECT lockbox.sees_all())
	   AND r.state OPERATOR(pg_catalog.<>) ALL (ARRAY['pending_review', 'pending_approval', 'approved'])
	 ORDER BY r.id DESC)
	UNION ALL
	-- reviewers and auditors: every request, open (the state as of now)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,
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
					pg_catalog.statement_timestamp()) AS state) o
	 WHERE (SELECT lockbox.sees_all())
	   AND r.state OPERATOR(pg_catalog.=) ANY (ARRAY['pending_review', 'pending_approval', 'approved'])
	 ORDER BY r.id DESC)
	UNION ALL
	-- engineers: their own, settled (the stored state is the state)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,
		   r.access, r.duration, r.state, r.created_at, NULL::timestamptz,
		   r.reviewer::name, r.reviewed_at, r.approved_at, r.access_ends_at,
		   r.closed_at, r.close_reason,
		   (SELECT pg_catalog.count(*) FROM lockbox.decision d
			 WHERE d.request_id OPERATOR(pg_catalog.=) r.id
			   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer
	  FROM lockbox.request r
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND r.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT lockbox.me())
	   AND r.state OPERATOR(pg_catalog.<>) ALL (ARRAY['pending_review', 'pending_approval', 'approved'])
	 ORDER BY r.id DESC)
	UNION ALL
	-- engineers: their own, open (the state as of now)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,
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
					pg_catalog.statement_timestamp()) AS state) o
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND r.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT lockbox.me())
	   AND r.state OPERATOR(pg_catalog.=) ANY (ARRAY['pending_review', 'pending_approval', 'approved'])
	 ORDER BY r.id DESC)
	UNION ALL
	-- approvers: their (first) tenant's, settled (the stored state is the state)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,
		   r.access, r.duration, r.state, r.created_at, NULL::timestamptz,
		   r.reviewer::name, r.reviewed_at, r.approved_at, r.access_ends_at,
		   r.closed_at, r.close_reason,
		   (SELECT pg_catalog.count(*) FROM lockbox.decision d
			 WHERE d.request_id OPERATOR(pg_catalog.=) r.id
			   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer
	  FROM lockbox.request r
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND r.requester::pg_catalog.oid OPERATOR(pg_catalog.<>) (SELECT lockbox.me())
	   AND EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
											   ap.approver::pg_catalog.oid, 'USAGE'))
	   AND r.tenant OPERATOR(pg_catalog.=) (SELECT ap.tenant FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
										   ap.approver::pg_catalog.oid, 'USAGE')
				 ORDER BY ap.tenant LIMIT 1)
	   AND r.state OPERATOR(pg_catalog.<>) ALL (ARRAY['pending_review', 'pending_approval', 'approved'])
	 ORDER BY r.id DESC)
	UNION ALL
	-- approvers: their (first) tenant's, open (the state as of now)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,
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
					pg_catalog.statement_timestamp()) AS state) o
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND r.requester::pg_catalog.oid OPERATOR(pg_catalog.<>) (SELECT lockbox.me())
	   AND EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
											   ap.approver::pg_catalog.oid, 'USAGE'))
	   AND r.tenant OPERATOR(pg_catalog.=) (SELECT ap.tenant FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
										   ap.approver::pg_catalog.oid, 'USAGE')
				 ORDER BY ap.tenant LIMIT 1)
	   AND r.state OPERATOR(pg_catalog.=) ANY (ARRAY['pending_review', 'pending_approval', 'approved'])
	 ORDER BY r.id DESC)
	UNION ALL
	-- approvers: their other tenants', settled (the stored state is the state)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,
		   r.access, r.duration, r.state, r.created_at, NULL::timestamptz,
		   r.reviewer::name, r.reviewed_at, r.approved_at, r.access_ends_at,
		   r.closed_at, r.close_reason,
		   (SELECT pg_catalog.count(*) FROM lockbox.decision d
			 WHERE d.request_id OPERATOR(pg_catalog.=) r.id
			   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer
	  FROM lockbox.request r
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND r.requester::pg_catalog.oid OPERATOR(pg_catalog.<>) (SELECT lockbox.me())
	   AND EXISTS (SELECT DISTINCT ap.tenant FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
											   ap.approver::pg_catalog.oid, 'USAGE')
				 OFFSET 1)
	   AND r.tenant OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT DISTINCT ap.tenant FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
										   ap.approver::pg_catalog.oid, 'USAGE')
				 ORDER BY ap.tenant OFFSET 1))
	   AND r.state OPERATOR(pg_catalog.<>) ALL (ARRAY['pending_review', 'pending_approval', 'approved'])
	 ORDER BY r.id DESC)
	UNION ALL
	-- approvers: their other tenants', open (the state as of now)
	(SELECT r.id, r.tenant, r.requester::name, r.reason, r.ticket, r.tables,
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
					pg_catalog.statement_timestamp()) AS state) o
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND r.requester::pg_catalog.oid OPERATOR(pg_catalog.<>) (SELECT lockbox.me())
	   AND EXISTS (SELECT DISTINCT ap.tenant FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
											   ap.approver::pg_catalog.oid, 'USAGE')
				 OFFSET 1)
	   AND r.tenant OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT DISTINCT ap.tenant FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
										   ap.approver::pg_catalog.oid, 'USAGE')
				 ORDER BY ap.tenant OFFSET 1))
	   AND r.state OPERATOR(pg_catalog.=) ANY (ARRAY['pending_review', 'pending_approval', 'approved'])
	 ORDER BY r.id DESC)
) AS r (id, tenant, requester, reason, ticket, tables, access, duration, state,
		created_at, deadline, reviewer, reviewed_at, approved_at, access_ends_at,
		closed_at, close_reason, approvals)
 ORDER BY r.id DESC;
COMMENT ON VIEW lockbox.requests IS
	'Requests, newest first, each with its state now (lockbox.request_state) and the end of its current pending stage: engineers see their own, approvers their tenants'', reviewers and auditors all.';

CREATE OR REPLACE VIEW lockbox.access_log WITH (security_barrier) AS
SELECT * FROM (
	-- reviewers and auditors: every row
	(SELECT a.at, a.actor, a.request_id, a.tenant,
		   a.detail OPERATOR(pg_catalog.->>) 'relation',
		   a.detail OPERATOR(pg_catalog.->>) 'command',
		   a.detail OPERATOR(pg_catalog.->>) 'query',
		   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'statements')::pg_catalog.int8, 1),
		   a.at OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs =>
			   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'last_at_usec')::pg_catalog.int8, 0)
			   OPERATOR(pg_catalog./) 1000000.0),
		   CASE WHEN a.event OPERATOR(pg_catalog.=) 'refused' THEN 'refused'
				ELSE 'allowed' END,
		   a.detail OPERATOR(pg_catalog.->>) 'reason',
		   COALESCE(a.detail OPERATOR(pg_catalog.->>) 'node', 'primary'),
		   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'query_length')::pg_catalog.int8,
					pg_catalog.octet_length(a.detail OPERATOR(pg_catalog.->>) 'query')),
		   a.detail OPERATOR(pg_catalog.->>) 'query_sha256',
		   a.session_user_name,
		   (a.detail OPERATOR(pg_catalog.->>) 'pid')::pg_catalog.int4,
		   a.seq
	  FROM lockbox.audit_log a
	 WHERE (SELECT lockbox.sees_all())
	   AND a.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
	 ORDER BY a.at DESC)
	UNION ALL
	-- engineers: their own
	(SELECT a.at, a.actor, a.request_id, a.tenant,
		   a.detail OPERATOR(pg_catalog.->>) 'relation',
		   a.detail OPERATOR(pg_catalog.->>) 'command',
		   a.detail OPERATOR(pg_catalog.->>) 'query',
		   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'statements')::pg_catalog.int8, 1),
		   a.at OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs =>
			   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'last_at_usec')::pg_catalog.int8, 0)
			   OPERATOR(pg_catalog./) 1000000.0),
		   CASE WHEN a.event OPERATOR(pg_catalog.=) 'refused' THEN 'refused'
				ELSE 'allowed' END,
		   a.detail OPERATOR(pg_catalog.->>) 'reason',
		   COALESCE(a.detail OPERATOR(pg_catalog.->>) 'node', 'primary'),
		   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'query_length')::pg_catalog.int8,
					pg_catalog.octet_length(a.detail OPERATOR(pg_catalog.->>) 'query')),
		   a.detail OPERATOR(pg_catalog.->>) 'query_sha256',
		   a.session_user_name,
		   (a.detail OPERATOR(pg_catalog.->>) 'pid')::pg_catalog.int4,
		   a.seq
	  FROM lockbox.audit_log a
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND a.actor OPERATOR(pg_catalog.=) pg_catalog."current_user"()
	   AND a.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
	 ORDER BY a.at DESC)
	UNION ALL
	-- approvers: their (first) tenant's
	(SELECT a.at, a.actor, a.request_id, a.tenant,
		   a.detail OPERATOR(pg_catalog.->>) 'relation',
		   a.detail OPERATOR(pg_catalog.->>) 'command',
		   a.detail OPERATOR(pg_catalog.->>) 'query',
		   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'statements')::pg_catalog.int8, 1),
		   a.at OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs =>
			   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'last_at_usec')::pg_catalog.int8, 0)
			   OPERATOR(pg_catalog./) 1000000.0),
		   CASE WHEN a.event OPERATOR(pg_catalog.=) 'refused' THEN 'refused'
				ELSE 'allowed' END,
		   a.detail OPERATOR(pg_catalog.->>) 'reason',
		   COALESCE(a.detail OPERATOR(pg_catalog.->>) 'node', 'primary'),
		   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'query_length')::pg_catalog.int8,
					pg_catalog.octet_length(a.detail OPERATOR(pg_catalog.->>) 'query')),
		   a.detail OPERATOR(pg_catalog.->>) 'query_sha256',
		   a.session_user_name,
		   (a.detail OPERATOR(pg_catalog.->>) 'pid')::pg_catalog.int4,
		   a.seq
	  FROM lockbox.audit_log a
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND a.actor OPERATOR(pg_catalog.<>) pg_catalog."current_user"()
	   AND EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
											   ap.approver::pg_catalog.oid, 'USAGE'))
	   AND a.tenant OPERATOR(pg_catalog.=) (SELECT ap.tenant FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
										   ap.approver::pg_catalog.oid, 'USAGE')
				 ORDER BY ap.tenant LIMIT 1)
	   AND a.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
	 ORDER BY a.at DESC)
	UNION ALL
	-- approvers: their other tenants'
	(SELECT a.at, a.actor, a.request_id, a.tenant,
		   a.detail OPERATOR(pg_catalog.->>) 'relation',
		   a.detail OPERATOR(pg_catalog.->>) 'command',
		   a.detail OPERATOR(pg_catalog.->>) 'query',
		   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'statements')::pg_catalog.int8, 1),
		   a.at OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs =>
			   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'last_at_usec')::pg_catalog.int8, 0)
			   OPERATOR(pg_catalog./) 1000000.0),
		   CASE WHEN a.event OPERATOR(pg_catalog.=) 'refused' THEN 'refused'
				ELSE 'allowed' END,
		   a.detail OPERATOR(pg_catalog.->>) 'reason',
		   COALESCE(a.detail OPERATOR(pg_catalog.->>) 'node', 'primary'),
		   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'query_length')::pg_catalog.int8,
					pg_catalog.octet_length(a.detail OPERATOR(pg_catalog.->>) 'query')),
		   a.detail OPERATOR(pg_catalog.->>) 'query_sha256',
		   a.session_user_name,
		   (a.detail OPERATOR(pg_catalog.->>) 'pid')::pg_catalog.int4,
		   a.seq
	  FROM lockbox.audit_log a
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND a.actor OPERATOR(pg_catalog.<>) pg_catalog."current_user"()
	   AND EXISTS (SELECT DISTINCT ap.tenant FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
											   ap.approver::pg_catalog.oid, 'USAGE')
				 OFFSET 1)
	   AND a.tenant OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT DISTINCT ap.tenant FROM lockbox.approver ap
				 WHERE pg_catalog.pg_has_role(pg_catalog."current_user"(),
										   ap.approver::pg_catalog.oid, 'USAGE')
				 ORDER BY ap.tenant OFFSET 1))
	   AND a.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
	 ORDER BY a.at DESC)
) AS a (at, engineer, request_id, tenant, relation, command, query, statements,
		last_at, outcome, reason, node, query_length, query_sha256,
		session_user_name, pid, seq)
 ORDER BY a.at DESC;
COMMENT ON VIEW lockbox.access_log IS
	'Engineers'' statements on protected data, allowed or refused, newest first: one row per relation and covering request (statements a session repeated are counted in one row). Each caller sees their own, their tenants'', or (reviewers, auditors) all.';

-- A view over a UNION ALL is not updatable, so a write through it would fail
-- before the privilege check, with another error.  These triggers make the
-- privilege check (42501) the one that refuses, as before.
CREATE FUNCTION lockbox.read_only_view() RETURNS trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	RAISE EXCEPTION 'view %.% is read-only', TG_TABLE_SCHEMA, TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE ALL ON FUNCTION lockbox.read_only_view() FROM PUBLIC;
COMMENT ON FUNCTION lockbox.read_only_view() IS
	'Trigger: refuses writes through lockbox.requests and lockbox.access_log (reading views).';
CREATE TRIGGER requests_read_only INSTEAD OF INSERT OR UPDATE OR DELETE
	ON lockbox.requests FOR EACH ROW EXECUTE FUNCTION lockbox.read_only_view();
CREATE TRIGGER access_log_read_only INSTEAD OF INSERT OR UPDATE OR DELETE
	ON lockbox.access_log FOR EACH ROW EXECUTE FUNCTION lockbox.read_only_view();

-- verification from a trusted anchor on: a daily check costs the day's rows
CREATE FUNCTION @extschema@.lockbox_verify_audit(since_seq bigint, since_hash text,
		OUT ok boolean, OUT rows_checked bigint, OUT first_bad_seq bigint)
	RETURNS record AS 'MODULE_PATHNAME', 'lockbox_verify_audit_since'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@.lockbox_verify_audit(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.lockbox_verify_audit(bigint, text)
	TO lockbox_auditor, lockbox_approver;
COMMENT ON FUNCTION @extschema@.lockbox_verify_audit(bigint, text) IS
	'Verifies the audit log from a trusted anchor on (an earlier check''s head, or an anchor of the server log or a notification): row since_seq must still carry since_hash, and every later row its hash and links. rows_checked counts the anchor row and those after it.';
