/* lockbox--1.0.sql: Customer Lockbox for PostgreSQL, version 1.0 */

\echo Use "CREATE EXTENSION lockbox" to load this file. \quit

-- The first C function loaded runs _PG_init, which refuses with a hint unless
-- lockbox is in shared_preload_libraries.  Do it before anything else exists.
CREATE FUNCTION @extschema@.lockbox_preload_check() RETURNS void
	AS 'MODULE_PATHNAME', 'lockbox_preload_check' LANGUAGE C STRICT;
SELECT @extschema@.lockbox_preload_check();
DROP FUNCTION @extschema@.lockbox_preload_check();

------------------------------------------------------------------------------
-- Parties: group roles, created when missing (roles are cluster-wide, so a
-- second database reuses them).
------------------------------------------------------------------------------
DO $roles$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['lockbox_engineer', 'lockbox_reviewer',
							 'lockbox_approver', 'lockbox_auditor']
	LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
					   WHERE rolname OPERATOR(pg_catalog.=) r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$roles$;

------------------------------------------------------------------------------
-- Internal state: schema lockbox, owned by the extension owner, no privileges
-- for anyone else.  Every change goes through the C functions, which write as
-- the extension owner after checking the caller.
------------------------------------------------------------------------------
CREATE SCHEMA lockbox;
REVOKE ALL ON SCHEMA lockbox FROM PUBLIC;
GRANT USAGE ON SCHEMA lockbox
	TO lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor;

CREATE TABLE lockbox.tenant (
	tenant				text PRIMARY KEY,
	enabled				boolean NOT NULL DEFAULT true,
	required_approvals	integer NOT NULL DEFAULT 1
		CHECK (required_approvals BETWEEN 1 AND 100),
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp()
);

CREATE TABLE lockbox.approver (
	tenant		text NOT NULL REFERENCES lockbox.tenant ON DELETE CASCADE,
	approver	regrole NOT NULL,
	added_at	timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
	PRIMARY KEY (tenant, approver)
);

CREATE TABLE lockbox.protected_table (
	relid			regclass PRIMARY KEY,
	tenant_column	name,
	tenant			text REFERENCES lockbox.tenant,
	rls_was_enabled	boolean NOT NULL,	/* lockbox_unprotect restores it */
	policies		text NOT NULL,		/* fingerprint of lockbox's policies */
	granted			text[],				/* privileges given to lockbox_engineer */
	CHECK ((tenant_column IS NULL) <> (tenant IS NULL))
);

CREATE SEQUENCE lockbox.request_id_seq;
CREATE TABLE lockbox.request (
	id				bigint PRIMARY KEY
		DEFAULT pg_catalog.nextval('lockbox.request_id_seq'),
	tenant			text NOT NULL,	/* of lockbox.tenant, checked by lockbox_request */
	requester		regrole NOT NULL,
	reason			text NOT NULL,
	ticket			text,
	tables			regclass[] NOT NULL,
	access			text NOT NULL CHECK (access IN ('read', 'write')),
	duration		interval NOT NULL,
	state			text NOT NULL CHECK (state IN ('pending_review',
												   'pending_approval', 'approved', 'denied', 'expired',
												   'cancelled', 'revoked', 'closed')),
	created_at		timestamptz NOT NULL,
	deadline		timestamptz,	/* end of the current pending stage */
	reviewer		regrole,
	reviewed_at		timestamptz,
	approved_at		timestamptz,
	access_ends_at	timestamptz,
	closed_at		timestamptz,
	close_reason	text
);
ALTER SEQUENCE lockbox.request_id_seq OWNED BY lockbox.request.id;
-- the deadlines still to be acted on: pending stages and open access windows
CREATE INDEX request_deadline_idx ON lockbox.request (deadline)
	WHERE state IN ('pending_review', 'pending_approval');
CREATE INDEX request_access_ends_idx ON lockbox.request (access_ends_at)
	WHERE state = 'approved';

-- stage 2 votes: one per approver role and per session user
CREATE TABLE lockbox.decision (
	request_id		bigint NOT NULL,	/* of lockbox.request, which is never deleted */
	approver		regrole NOT NULL,
	session_approver regrole NOT NULL,
	decision		text NOT NULL CHECK (decision IN ('approve', 'deny')),
	comment			text,
	decided_at		timestamptz NOT NULL,
	PRIMARY KEY (request_id, approver),
	UNIQUE (request_id, session_approver)
);

CREATE SEQUENCE lockbox.notification_id_seq;
CREATE TABLE lockbox.notification (
	id				bigint PRIMARY KEY
		DEFAULT pg_catalog.nextval('lockbox.notification_id_seq'),
	request_id		bigint NOT NULL,	/* of lockbox.request, which is never deleted */
	recipient		regrole NOT NULL,
	event			text NOT NULL,
	payload			jsonb NOT NULL,
	created_at		timestamptz NOT NULL,
	claimed_at		timestamptz,
	claimed_by		name,
	delivered_at	timestamptz
);
ALTER SEQUENCE lockbox.notification_id_seq OWNED BY lockbox.notification.id;
CREATE INDEX notification_undelivered_idx ON lockbox.notification (id)
	WHERE delivered_at IS NULL;
-- notifications whose NOTIFY the worker has yet to send (see src/notify.c)
-- (no index: the worker drains it whole, and every index costs each transition WAL)
CREATE TABLE lockbox.notify_outbox (
	notification_id	bigint NOT NULL,
	payload			text NOT NULL
);

/*
 * The audit log.  Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE
 * for every role.  Rows form a hash DAG: each row names, in "parents", the
 * audit rows that were committed and not yet referenced when it was written,
 * and its hash is sha256 over the parents' hashes and its own content.  Only
 * committed rows are ever referenced, so concurrent transitions never wait for
 * each other's commit, and an aborted transaction leaves no hole.
 */
CREATE SEQUENCE lockbox.audit_seq;
CREATE TABLE lockbox.audit_log (
	seq					bigint PRIMARY KEY,
	at					timestamptz NOT NULL,
	session_user_name	name NOT NULL,
	actor				name NOT NULL,
	event				text NOT NULL,
	request_id			bigint,
	tenant				text,
	detail				jsonb NOT NULL,
	parents				bigint[] NOT NULL,
	hash				bytea NOT NULL
);
ALTER SEQUENCE lockbox.audit_seq OWNED BY lockbox.audit_log.seq;
CREATE INDEX audit_log_request_idx ON lockbox.audit_log (request_id);

CREATE FUNCTION lockbox.audit_log_append_only() RETURNS trigger
	AS 'MODULE_PATHNAME', 'lockbox_audit_log_append_only' LANGUAGE C;
REVOKE ALL ON FUNCTION lockbox.audit_log_append_only() FROM PUBLIC;
CREATE TRIGGER audit_log_append_only
	BEFORE UPDATE OR DELETE ON lockbox.audit_log
	FOR EACH ROW EXECUTE FUNCTION lockbox.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate
	BEFORE TRUNCATE ON lockbox.audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION lockbox.audit_log_append_only();

-- revocations recorded while another session held their request: they end
-- the access at once, and the worker moves the request to revoked
CREATE TABLE lockbox.revocation (
	request_id	bigint PRIMARY KEY,
	revoked_by	regrole NOT NULL,
	reason		text NOT NULL,
	revoked_at	timestamptz NOT NULL
);

-- engineers whose access ended and whose sessions the worker is to end
CREATE TABLE lockbox.session_end (
	engineer	regrole NOT NULL,
	request_id	bigint NOT NULL,
	except_pid	integer NOT NULL	/* the session that closed it itself */
);


REVOKE ALL ON ALL TABLES IN SCHEMA lockbox FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA lockbox FROM PUBLIC;

-- pg_dump keeps requests, decisions, notifications and the audit
SELECT pg_catalog.pg_extension_config_dump('lockbox.tenant', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.approver', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.protected_table', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.request', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.request_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.decision', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.notification', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.notification_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.audit_seq', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.notify_outbox', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.revocation', '');

------------------------------------------------------------------------------
-- Who the caller is, for the views.  The views read the tables as their
-- owner, and take the caller's identity from current_user; an approver is a
-- caller holding the privileges of a role bound to the row's tenant.
------------------------------------------------------------------------------
CREATE FUNCTION lockbox.me() RETURNS oid
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$ SELECT r.oid FROM pg_catalog.pg_roles r
		  WHERE r.rolname OPERATOR(pg_catalog.=) pg_catalog."current_user"() $$;

CREATE FUNCTION lockbox.sees_all() RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	AS $$ SELECT pg_catalog.pg_has_role(pg_catalog."current_user"(), 'lockbox_reviewer', 'USAGE')
			  OR pg_catalog.pg_has_role(pg_catalog."current_user"(), 'lockbox_auditor', 'USAGE') $$;

REVOKE ALL ON FUNCTION lockbox.me(), lockbox.sees_all()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.me(), lockbox.sees_all()
	TO lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor;

------------------------------------------------------------------------------
-- The policy functions lockbox_protect puts into its policies: the tenants
-- (as values of the tenant column's type) or the single-tenant tables the
-- current user may read ('r') or write ('w') at this statement.
------------------------------------------------------------------------------
-- a dropped protected table leaves lockbox.protected_table, audited
CREATE FUNCTION lockbox.on_sql_drop() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'lockbox_on_sql_drop' LANGUAGE C;
REVOKE ALL ON FUNCTION lockbox.on_sql_drop() FROM PUBLIC;
CREATE EVENT TRIGGER lockbox_sql_drop ON sql_drop
	EXECUTE FUNCTION lockbox.on_sql_drop();

-- what lockbox_protect created, for lockbox.posture to notice changes
CREATE FUNCTION lockbox.policy_fingerprint(rel regclass) RETURNS text
	AS 'MODULE_PATHNAME', 'lockbox_policy_fingerprint'
	LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION lockbox.policy_fingerprint(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.policy_fingerprint(regclass)
	TO lockbox_reviewer, lockbox_auditor;

CREATE FUNCTION lockbox.granted_keys(rel regclass, cmd "char", sample anyelement)
	RETURNS anyarray AS 'MODULE_PATHNAME', 'lockbox_granted_keys'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE FUNCTION lockbox.granted_table(rel regclass, cmd "char")
	RETURNS boolean AS 'MODULE_PATHNAME', 'lockbox_granted_table'
	LANGUAGE C STABLE PARALLEL RESTRICTED;
REVOKE ALL ON FUNCTION lockbox.granted_keys(regclass, "char", anyelement),
	lockbox.granted_table(regclass, "char") FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.granted_keys(regclass, "char", anyelement),
	lockbox.granted_table(regclass, "char") TO lockbox_engineer;

------------------------------------------------------------------------------
-- Views: the reading interface.  Each shows a caller only what is theirs:
-- engineers their own requests, approvers their tenants', reviewers and
-- auditors everything.  security_barrier keeps the filter ahead of any
-- function a caller adds to the query.
------------------------------------------------------------------------------

/* the state a request is in now: a pending stage or an access window whose
 * deadline has passed is shown as it will be once the worker acts on it */
CREATE VIEW lockbox.requests WITH (security_barrier) AS
SELECT r.id,
	   r.tenant,
	   r.requester::name AS requester,
	   r.reason,
	   r.ticket,
	   r.tables,
	   r.access,
	   r.duration,
	   CASE
		   WHEN r.state IN ('pending_review', 'pending_approval')
			AND r.deadline <= pg_catalog.statement_timestamp() THEN 'expired'
		   WHEN r.state = 'approved'
			AND EXISTS (SELECT 1 FROM lockbox.revocation v
						 WHERE v.request_id OPERATOR(pg_catalog.=) r.id) THEN 'revoked'
		   WHEN r.state = 'approved'
			AND r.access_ends_at <= pg_catalog.statement_timestamp() THEN 'closed'
		   ELSE r.state
	   END AS state,
	   r.created_at,
	   CASE
		   WHEN r.state IN ('pending_review', 'pending_approval')
			AND r.deadline > pg_catalog.statement_timestamp() THEN r.deadline
	   END AS deadline,
	   r.reviewer::name AS reviewer,
	   r.reviewed_at,
	   r.approved_at,
	   r.access_ends_at,
	   CASE
		   WHEN r.state IN ('pending_review', 'pending_approval')
			AND r.deadline <= pg_catalog.statement_timestamp() THEN r.deadline
		   WHEN r.state = 'approved'
			AND r.access_ends_at <= pg_catalog.statement_timestamp() THEN r.access_ends_at
		   ELSE r.closed_at
	   END AS closed_at,
	   CASE
		   WHEN r.state = 'approved'
			AND r.access_ends_at <= pg_catalog.statement_timestamp() THEN 'window_elapsed'
		   ELSE r.close_reason
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

CREATE VIEW lockbox.active_access WITH (security_barrier) AS
SELECT r.id AS request_id,
	   r.requester::name AS engineer,
	   r.tenant,
	   r.tables,
	   r.access,
	   r.approved_at AS starts_at,
	   r.access_ends_at AS ends_at
  FROM lockbox.request r
 WHERE r.state = 'approved'
   AND r.access_ends_at > pg_catalog.statement_timestamp()
   AND NOT EXISTS (SELECT 1 FROM lockbox.revocation v
					WHERE v.request_id OPERATOR(pg_catalog.=) r.id)
   AND (r.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT lockbox.me())
		OR (SELECT lockbox.sees_all())
		OR EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE ap.tenant OPERATOR(pg_catalog.=) r.tenant
				   AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE')));

CREATE VIEW lockbox.audit WITH (security_barrier) AS
SELECT a.seq, a.at, a.session_user_name, a.actor, a.event, a.request_id,
	   a.tenant, a.detail, a.parents, a.hash
  FROM lockbox.audit_log a
 WHERE (SELECT lockbox.sees_all())
	OR (a.tenant IS NOT NULL AND EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE ap.tenant OPERATOR(pg_catalog.=) a.tenant
				   AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE')))
	OR EXISTS (SELECT 1 FROM lockbox.request r
				WHERE r.id OPERATOR(pg_catalog.=) a.request_id
				  AND r.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT lockbox.me()));

-- every statement an engineer ran on a protected table, from the audit; a
-- statement a session repeated back to back is one row, with its count and
-- the time of the last one
CREATE VIEW lockbox.access_log WITH (security_barrier) AS
SELECT a.at, a.actor AS engineer, a.request_id, a.tenant,
	   a.detail OPERATOR(pg_catalog.->>) 'relation' AS relation,
	   a.detail OPERATOR(pg_catalog.->>) 'command' AS command,
	   a.detail OPERATOR(pg_catalog.->>) 'query' AS query,
	   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'statements')::pg_catalog.int8, 1) AS statements,
	   a.at OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs =>
		   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'last_at_usec')::pg_catalog.int8, 0)
		   OPERATOR(pg_catalog./) 1000000.0) AS last_at
  FROM lockbox.audit_log a
 WHERE a.event OPERATOR(pg_catalog.=) 'access'
   AND ((SELECT lockbox.sees_all())
		OR a.actor OPERATOR(pg_catalog.=) pg_catalog."current_user"()
		OR (a.tenant IS NOT NULL AND EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE ap.tenant OPERATOR(pg_catalog.=) a.tenant
				   AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE'))));

CREATE VIEW lockbox.notifications WITH (security_barrier) AS
SELECT n.id, n.request_id, n.recipient::name AS recipient, n.event, n.payload,
	   n.created_at, n.claimed_at, n.delivered_at
  FROM lockbox.notification n
 WHERE (SELECT lockbox.sees_all())
	OR pg_catalog.pg_has_role(pg_catalog."current_user"(), n.recipient::pg_catalog.oid, 'USAGE')
	OR EXISTS (SELECT 1 FROM lockbox.request r
				 JOIN lockbox.approver ap
				   ON ap.tenant OPERATOR(pg_catalog.=) r.tenant
				WHERE r.id OPERATOR(pg_catalog.=) n.request_id
				  AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE'));

CREATE VIEW lockbox.tenants WITH (security_barrier) AS
SELECT t.tenant, t.enabled, t.required_approvals,
	   ARRAY(SELECT a.approver::name FROM lockbox.approver a
			  WHERE a.tenant OPERATOR(pg_catalog.=) t.tenant
			  ORDER BY 1) AS approvers
  FROM lockbox.tenant t;

CREATE VIEW lockbox.protected_tables WITH (security_barrier) AS
SELECT p.relid AS relation, p.tenant_column, p.tenant
  FROM lockbox.protected_table p;

/*
 * Misconfigurations that would let someone around lockbox: one row per
 * finding (ok = false), or one ok row per check that found nothing.
 * Engineers are the roles that are members of lockbox_engineer, directly or
 * through other roles (superuser status alone does not make one).
 */
CREATE VIEW lockbox.posture AS
WITH RECURSIVE
closure(member, role) AS (
	SELECT m.member, m.roleid FROM pg_catalog.pg_auth_members m
	UNION
	SELECT c.member, m.roleid FROM closure c
	  JOIN pg_catalog.pg_auth_members m ON m.member OPERATOR(pg_catalog.=) c.role
),
engineer_role AS (
	SELECT r.oid FROM pg_catalog.pg_roles r
	 WHERE r.rolname OPERATOR(pg_catalog.=) 'lockbox_engineer'
),
engineers AS (
	SELECT DISTINCT c.member AS oid FROM closure c, engineer_role e
	 WHERE c.role OPERATOR(pg_catalog.=) e.oid
),
prot AS (
	SELECT p.relid::pg_catalog.oid AS relid, c.relowner, c.relrowsecurity, p.policies,
		   lockbox.policy_fingerprint(p.relid) AS current_policies
	  FROM lockbox.protected_table p
	  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relid
),
view_deps AS (
	SELECT DISTINCT r.ev_class AS view, d.refobjid AS rel
	  FROM pg_catalog.pg_rewrite r
	  JOIN pg_catalog.pg_depend d
		ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
	   AND d.objid OPERATOR(pg_catalog.=) r.oid
	   AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
	 WHERE d.refobjid OPERATOR(pg_catalog.<>) r.ev_class
),
reach(view, relid) AS (
	SELECT v.view, v.rel FROM view_deps v
	 WHERE v.rel IN (SELECT prot.relid FROM prot)
	UNION
	SELECT v.view, reach.relid FROM view_deps v
	  JOIN reach ON v.rel OPERATOR(pg_catalog.=) reach.view
),
findings(check_name, object, detail) AS (
	SELECT 'engineer_superuser', r.rolname::pg_catalog.text,
		   'Engineer is a superuser: row-level security and lockbox do not apply.'
	  FROM engineers e JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) e.oid
	 WHERE r.rolsuper
	UNION ALL
	SELECT 'engineer_bypassrls', r.rolname::pg_catalog.text,
		   'Engineer has BYPASSRLS: the lockbox policies do not apply.'
	  FROM engineers e JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) e.oid
	 WHERE r.rolbypassrls
	UNION ALL
	SELECT 'engineer_createrole', r.rolname::pg_catalog.text,
		   'Engineer has CREATEROLE and can grant itself other roles.'
	  FROM engineers e JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) e.oid
	 WHERE r.rolcreaterole
	UNION ALL
	SELECT 'engineer_owns_protected_table', pg_catalog.pg_get_userbyid(e.oid)::pg_catalog.text,
		   pg_catalog.format('Engineer owns protected table %s: row-level security does not apply to owners.',
							 prot.relid::pg_catalog.regclass)
	  FROM engineers e JOIN prot ON prot.relowner OPERATOR(pg_catalog.=) e.oid
	UNION ALL
	SELECT 'engineer_reaches_around',
		   pg_catalog.pg_get_userbyid(e.oid)::pg_catalog.text,
		   pg_catalog.format('Engineer can act as role %s, %s.', x.rolname,
			   CASE WHEN x.rolsuper THEN 'a superuser'
					WHEN x.rolbypassrls THEN 'which has BYPASSRLS'
					WHEN x.oid IN (SELECT prot.relowner FROM prot)
						THEN 'which owns a protected table'
					ELSE 'which is no engineer and has privileges on a protected table'
			   END)
	  FROM engineers e
	  JOIN closure c ON c.member OPERATOR(pg_catalog.=) e.oid
	  JOIN pg_catalog.pg_roles x ON x.oid OPERATOR(pg_catalog.=) c.role
	 WHERE x.rolsuper OR x.rolbypassrls
		OR x.oid IN (SELECT prot.relowner FROM prot)
		OR (x.oid NOT IN (SELECT engineers.oid FROM engineers)
			AND x.oid NOT IN (SELECT engineer_role.oid FROM engineer_role)
			AND EXISTS (SELECT 1 FROM prot
						 WHERE pg_catalog.has_table_privilege(x.oid, prot.relid,
								'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')))
	UNION ALL
	SELECT 'schema_writable', n.nspname::pg_catalog.text,
		   'Engineers can create objects in the schema of lockbox''s functions: a function of theirs with the same name could capture calls meant for lockbox.'
	  FROM pg_catalog.pg_extension x
	  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) x.extnamespace
	 WHERE x.extname OPERATOR(pg_catalog.=) 'lockbox'
	   AND EXISTS (SELECT 1 FROM engineers e
					WHERE pg_catalog.has_schema_privilege(e.oid, n.oid, 'CREATE'))
	UNION ALL
	SELECT 'rls_disabled', prot.relid::pg_catalog.regclass::pg_catalog.text,
		   'Row-level security is off on this protected table: engineers are not restricted by lockbox policies.'
	  FROM prot WHERE NOT prot.relrowsecurity
	UNION ALL
	SELECT 'policy_changed', prot.relid::pg_catalog.regclass::pg_catalog.text,
		   'A lockbox policy on this protected table was dropped or altered.'
	  FROM prot
	 WHERE prot.current_policies IS DISTINCT FROM prot.policies
	UNION ALL
	SELECT 'definer_view', reach.view::pg_catalog.regclass::pg_catalog.text,
		   pg_catalog.format('%s reads protected table %s as its owner, and engineers can read it.',
			   CASE v.relkind WHEN 'm' THEN 'Materialized view' ELSE 'View' END,
			   reach.relid::pg_catalog.regclass)
	  FROM reach
	  JOIN pg_catalog.pg_class v ON v.oid OPERATOR(pg_catalog.=) reach.view
	 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(v.reloptions) o
						WHERE pg_catalog.lower(o) IN ('security_invoker=true',
							'security_invoker=on', 'security_invoker=1',
							'security_invoker=yes'))
	   AND EXISTS (SELECT 1 FROM engineers e
					WHERE pg_catalog.has_table_privilege(e.oid, v.oid, 'SELECT'))
)
SELECT f.check_name, f.object, false AS ok, f.detail FROM findings f
UNION ALL
SELECT c.check_name, NULL, true, 'No finding.'
  FROM (VALUES ('engineer_superuser'), ('engineer_bypassrls'),
			   ('engineer_createrole'), ('engineer_owns_protected_table'),
			   ('engineer_reaches_around'), ('schema_writable'), ('rls_disabled'),
			   ('policy_changed'), ('definer_view')) AS c(check_name)
 WHERE NOT EXISTS (SELECT 1 FROM findings f
					WHERE f.check_name OPERATOR(pg_catalog.=) c.check_name);

REVOKE ALL ON lockbox.posture FROM PUBLIC;
GRANT SELECT ON lockbox.posture TO lockbox_reviewer, lockbox_auditor;

REVOKE ALL ON lockbox.requests, lockbox.active_access, lockbox.audit,
	lockbox.access_log, lockbox.notifications, lockbox.tenants,
	lockbox.protected_tables FROM PUBLIC;
GRANT SELECT ON lockbox.requests, lockbox.active_access, lockbox.audit,
	lockbox.access_log, lockbox.notifications, lockbox.tenants,
	lockbox.protected_tables
	TO lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor;

------------------------------------------------------------------------------
-- The API.  C functions running with the caller's privileges; they check the
-- caller and then write as the extension owner.  EXECUTE is granted to the
-- party that may call each one; the C code checks the rest (tenant,
-- separation of duties, state).
------------------------------------------------------------------------------
CREATE FUNCTION @extschema@.lockbox_request(tenant text, reason text,
		tables regclass[] DEFAULT NULL, access text DEFAULT 'read',
		duration interval DEFAULT NULL, ticket text DEFAULT NULL)
	RETURNS bigint AS 'MODULE_PATHNAME', 'lockbox_request'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_approve(request_id bigint,
		comment text DEFAULT NULL)
	RETURNS text AS 'MODULE_PATHNAME', 'lockbox_approve'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_deny(request_id bigint, reason text)
	RETURNS text AS 'MODULE_PATHNAME', 'lockbox_deny'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_cancel(request_id bigint,
		reason text DEFAULT NULL)
	RETURNS text AS 'MODULE_PATHNAME', 'lockbox_cancel'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_close(request_id bigint,
		resolution text DEFAULT NULL)
	RETURNS text AS 'MODULE_PATHNAME', 'lockbox_close'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_revoke(request_id bigint, reason text)
	RETURNS text AS 'MODULE_PATHNAME', 'lockbox_revoke'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_add_tenant(tenant text,
		enabled boolean DEFAULT true, required_approvals integer DEFAULT 1)
	RETURNS void AS 'MODULE_PATHNAME', 'lockbox_add_tenant'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_set_enabled(tenant text, enabled boolean)
	RETURNS void AS 'MODULE_PATHNAME', 'lockbox_set_enabled'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_add_approver(tenant text, approver regrole)
	RETURNS void AS 'MODULE_PATHNAME', 'lockbox_add_approver'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_remove_approver(tenant text,
		approver regrole)
	RETURNS void AS 'MODULE_PATHNAME', 'lockbox_remove_approver'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_protect(rel regclass,
		tenant_column name DEFAULT NULL, tenant text DEFAULT NULL)
	RETURNS void AS 'MODULE_PATHNAME', 'lockbox_protect'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_unprotect(rel regclass)
	RETURNS void AS 'MODULE_PATHNAME', 'lockbox_unprotect'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_verify_audit()
	RETURNS TABLE(ok boolean, rows_checked bigint, first_bad_seq bigint)
	AS 'MODULE_PATHNAME', 'lockbox_verify_audit'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_claim_notifications(max integer)
	RETURNS TABLE(id bigint, request_id bigint, recipient name, event text,
				  payload jsonb, created_at timestamptz)
	AS 'MODULE_PATHNAME', 'lockbox_claim_notifications'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_ack_notification(id bigint)
	RETURNS boolean AS 'MODULE_PATHNAME', 'lockbox_ack_notification'
	LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION
	@extschema@.lockbox_request(text, text, regclass[], text, interval, text),
	@extschema@.lockbox_approve(bigint, text),
	@extschema@.lockbox_deny(bigint, text),
	@extschema@.lockbox_cancel(bigint, text),
	@extschema@.lockbox_close(bigint, text),
	@extschema@.lockbox_revoke(bigint, text),
	@extschema@.lockbox_add_tenant(text, boolean, integer),
	@extschema@.lockbox_set_enabled(text, boolean),
	@extschema@.lockbox_add_approver(text, regrole),
	@extschema@.lockbox_remove_approver(text, regrole),
	@extschema@.lockbox_verify_audit(),
	@extschema@.lockbox_claim_notifications(integer),
	@extschema@.lockbox_ack_notification(bigint)
	FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
	@extschema@.lockbox_request(text, text, regclass[], text, interval, text),
	@extschema@.lockbox_cancel(bigint, text),
	@extschema@.lockbox_close(bigint, text)
	TO lockbox_engineer;
GRANT EXECUTE ON FUNCTION
	@extschema@.lockbox_approve(bigint, text),
	@extschema@.lockbox_deny(bigint, text)
	TO lockbox_reviewer, lockbox_approver;
GRANT EXECUTE ON FUNCTION
	@extschema@.lockbox_revoke(bigint, text),
	@extschema@.lockbox_set_enabled(text, boolean)
	TO lockbox_approver;
-- lockbox_protect and lockbox_unprotect keep EXECUTE for PUBLIC: they check
-- that the caller owns the table (or is a superuser) themselves.
GRANT EXECUTE ON FUNCTION
	@extschema@.lockbox_verify_audit(),
	@extschema@.lockbox_claim_notifications(integer),
	@extschema@.lockbox_ack_notification(bigint)
	TO lockbox_auditor;

------------------------------------------------------------------------------
-- The workers, per database served: state, last pass, next deadline.
------------------------------------------------------------------------------
CREATE FUNCTION lockbox.worker_status(OUT database text, OUT state text,
		OUT pid integer, OUT last_pass timestamptz, OUT next_deadline timestamptz)
	RETURNS SETOF record AS 'MODULE_PATHNAME', 'lockbox_worker_status'
	LANGUAGE C VOLATILE;
CREATE VIEW lockbox.worker AS SELECT * FROM lockbox.worker_status();
REVOKE ALL ON FUNCTION lockbox.worker_status() FROM PUBLIC;
REVOKE ALL ON lockbox.worker FROM PUBLIC;
GRANT SELECT ON lockbox.worker TO lockbox_reviewer, lockbox_auditor;
GRANT EXECUTE ON FUNCTION lockbox.worker_status() TO lockbox_reviewer, lockbox_auditor;

-- one batch of the worker's deadline step, run by hand (extension owner)
CREATE FUNCTION lockbox.run_deadlines(batch integer DEFAULT 500) RETURNS integer
	AS 'MODULE_PATHNAME', 'lockbox_run_deadlines' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION lockbox.run_deadlines(integer) FROM PUBLIC;

------------------------------------------------------------------------------
-- The worker: the launcher starts one for this database once this commits.
------------------------------------------------------------------------------
CREATE FUNCTION lockbox.start_worker() RETURNS void
	AS 'MODULE_PATHNAME', 'lockbox_start_worker' LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION lockbox.start_worker() FROM PUBLIC;
SELECT lockbox.start_worker();
