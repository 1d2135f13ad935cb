/* lockbox--1.0--1.1.sql: upgrade lockbox from 1.0 to 1.1 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.1'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs this script: a fresh 1.1 and
-- an upgraded 1.0 are the same by construction.

------------------------------------------------------------------------------
-- The state a request is in at a given time, defined once: the views, the
-- grants lookup, the lifecycle functions' messages and the worker all use
-- it.  A pending stage past its deadline is expired; an approved request is
-- revoked once a revocation is recorded beside it, and closed once its window
-- has ended -- whether or not the worker has acted on it yet.  Access is open
-- exactly when this says 'approved'.  revoked: a row in lockbox.revocation
-- names the request (read by the caller, which may read that table).
------------------------------------------------------------------------------
CREATE FUNCTION lockbox.request_state(state text, deadline timestamptz,
		access_ends_at timestamptz, revoked boolean, at timestamptz)
	RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$
	SELECT CASE
		WHEN state IN ('pending_review', 'pending_approval')
		 AND deadline OPERATOR(pg_catalog.<=) at THEN 'expired'
		WHEN state OPERATOR(pg_catalog.=) 'approved' AND revoked THEN 'revoked'
		WHEN state OPERATOR(pg_catalog.=) 'approved'
		 AND access_ends_at OPERATOR(pg_catalog.<=) at THEN 'closed'
		ELSE state
	END
	$$;
REVOKE ALL ON FUNCTION lockbox.request_state(text, timestamptz, timestamptz,
	boolean, timestamptz) FROM PUBLIC;
-- (the views' readers call it, as they call lockbox.me())
GRANT EXECUTE ON FUNCTION lockbox.request_state(text, timestamptz, timestamptz,
	boolean, timestamptz)
	TO lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor;

-- the views compute the state with it
-- (one FROM item, so that writing through the view is refused for lack of
-- privileges, as before, not for the view's shape)
CREATE OR REPLACE VIEW lockbox.requests WITH (security_barrier) AS
SELECT r.id,
	   r.tenant,
	   r.requester::name AS requester,
	   r.reason,
	   r.ticket,
	   r.tables,
	   r.access,
	   r.duration,
	   lockbox.request_state(r.state, r.deadline, r.access_ends_at,
			EXISTS (SELECT 1 FROM lockbox.revocation v
					 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
			pg_catalog.statement_timestamp()) AS state,
	   r.created_at,
	   CASE WHEN lockbox.request_state(r.state, r.deadline, r.access_ends_at,
			EXISTS (SELECT 1 FROM lockbox.revocation v
					 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
			pg_catalog.statement_timestamp())
				 IN ('pending_review', 'pending_approval') THEN r.deadline
	   END AS deadline,
	   r.reviewer::name AS reviewer,
	   r.reviewed_at,
	   r.approved_at,
	   r.access_ends_at,
	   CASE lockbox.request_state(r.state, r.deadline, r.access_ends_at,
			EXISTS (SELECT 1 FROM lockbox.revocation v
					 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
			pg_catalog.statement_timestamp())
		   WHEN r.state THEN r.closed_at
		   WHEN 'expired' THEN r.deadline
		   WHEN 'closed' THEN r.access_ends_at
		   ELSE (SELECT v.revoked_at FROM lockbox.revocation v
				  WHERE v.request_id OPERATOR(pg_catalog.=) r.id)
	   END AS closed_at,
	   CASE lockbox.request_state(r.state, r.deadline, r.access_ends_at,
			EXISTS (SELECT 1 FROM lockbox.revocation v
					 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
			pg_catalog.statement_timestamp())
		   WHEN r.state THEN r.close_reason
		   WHEN 'closed' THEN 'window_elapsed'
		   WHEN 'revoked' THEN 'revoked'
	   END AS close_reason,
	   (SELECT pg_catalog.count(*) FROM lockbox.decision d
		 WHERE d.request_id OPERATOR(pg_catalog.=) r.id
		   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer AS approvals
  FROM lockbox.request r
 WHERE r.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT lockbox.me())
	OR (SELECT lockbox.sees_all())
	OR EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE ap.tenant OPERATOR(pg_catalog.=) r.tenant
				   AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE'));

CREATE OR REPLACE VIEW lockbox.active_access WITH (security_barrier) AS
SELECT r.id AS request_id,
	   r.requester::name AS engineer,
	   r.tenant,
	   r.tables,
	   r.access,
	   r.approved_at AS starts_at,
	   r.access_ends_at AS ends_at
  FROM lockbox.request r
 WHERE r.state OPERATOR(pg_catalog.=) 'approved'
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
