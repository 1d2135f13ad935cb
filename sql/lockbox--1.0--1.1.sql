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
-- exactly when this says 'approved'.
------------------------------------------------------------------------------
CREATE FUNCTION lockbox.request_state(state text, deadline timestamptz,
		access_ends_at timestamptz, request_id bigint, at timestamptz)
	RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
	AS $$
	SELECT CASE	-- ($n: a column of lockbox.revocation would shadow a name)
		WHEN $1 IN ('pending_review', 'pending_approval')
		 AND $2 OPERATOR(pg_catalog.<=) $5 THEN 'expired'
		WHEN $1 OPERATOR(pg_catalog.=) 'approved'
		 AND EXISTS (SELECT 1 FROM lockbox.revocation v
					  WHERE v.request_id OPERATOR(pg_catalog.=) $4) THEN 'revoked'
		WHEN $1 OPERATOR(pg_catalog.=) 'approved'
		 AND $3 OPERATOR(pg_catalog.<=) $5 THEN 'closed'
		ELSE $1
	END
	$$;
REVOKE ALL ON FUNCTION lockbox.request_state(text, timestamptz, timestamptz,
	bigint, timestamptz) FROM PUBLIC;
