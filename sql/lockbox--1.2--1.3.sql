/* lockbox--1.2--1.3.sql: upgrade lockbox from 1.2 to 1.3 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.3'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, 1.1 to 1.2, then this one): a fresh 1.3 and an upgraded 1.0,
-- 1.1 or 1.2 are the same by construction.

------------------------------------------------------------------------------
-- Compact rows
--
-- Audit rows written from 1.3 on are smaller, and their hash (format "lockbox
-- audit v2", README "The audit log") covers binary values only, so that
-- lockbox_verify_audit() renders nothing as text:
--
-- * session_user_name and actor are text, not name (64 bytes each);
--   session_user_name is NULL where it is the actor;
-- * parents is NULL where the row's only parent is the row just before it
--   (seq - 1);
-- * an engineer's statement (relation, command, statement text) is stored
--   once, in lockbox.audit_statement, and its access and refused rows name
--   it by id, with the rest of what their detail held in typed columns
--   (detail is NULL); the row's hash covers the statement's sha256, which
--   verification recomputes from the stored text;
-- * hash_v1 is true on the rows written before 1.3, whose hash (format
--   "lockbox audit v1") is checked as before: they are kept as they are.
--
-- The views show every row as before: the same columns, the same detail.
------------------------------------------------------------------------------
DROP VIEW lockbox.access_log;
DROP VIEW lockbox.audit;

CREATE SEQUENCE lockbox.audit_statement_id_seq;
CREATE TABLE lockbox.audit_statement (
	id			bigint PRIMARY KEY
				DEFAULT pg_catalog.nextval('lockbox.audit_statement_id_seq'),
	digest		bytea NOT NULL UNIQUE,	/* sha256 of relation, command, query */
	relation	text NOT NULL,
	command		text NOT NULL,
	query		text NOT NULL
);
ALTER SEQUENCE lockbox.audit_statement_id_seq OWNED BY lockbox.audit_statement.id;
REVOKE ALL ON lockbox.audit_statement, lockbox.audit_statement_id_seq FROM PUBLIC;
CREATE TRIGGER audit_statement_append_only
	BEFORE UPDATE OR DELETE ON lockbox.audit_statement
	FOR EACH ROW EXECUTE FUNCTION lockbox.audit_log_append_only();
CREATE TRIGGER audit_statement_no_truncate
	BEFORE TRUNCATE ON lockbox.audit_statement
	FOR EACH STATEMENT EXECUTE FUNCTION lockbox.audit_log_append_only();
ALTER TABLE lockbox.audit_statement ENABLE ALWAYS TRIGGER audit_statement_append_only;
ALTER TABLE lockbox.audit_statement ENABLE ALWAYS TRIGGER audit_statement_no_truncate;
SELECT pg_catalog.pg_extension_config_dump('lockbox.audit_statement', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.audit_statement_id_seq', '');
COMMENT ON TABLE lockbox.audit_statement IS
	'Engineers'' statements named by access and refused audit rows, each stored once; digest is the sha256 the rows'' hashes cover. Append-only.';

-- (one rewrite of the table: the name columns become text; the hashes of
-- the rows written before are unchanged, they cover the names as text)
ALTER TABLE lockbox.audit_log
	ALTER COLUMN session_user_name TYPE text,
	ALTER COLUMN session_user_name DROP NOT NULL,
	ALTER COLUMN actor TYPE text,
	ALTER COLUMN detail DROP NOT NULL,
	ALTER COLUMN parents DROP NOT NULL,
	ADD COLUMN hash_v1 boolean DEFAULT true,
	ADD COLUMN statement_id bigint,
	ADD COLUMN pid integer,
	ADD COLUMN statements integer,
	ADD COLUMN last_at_usec bigint,
	ADD COLUMN reason text,
	ADD COLUMN node text,
	ADD COLUMN query_length bigint,
	ADD COLUMN query_sha256 text;
ALTER TABLE lockbox.audit_log ALTER COLUMN hash_v1 DROP DEFAULT;
COMMENT ON COLUMN lockbox.audit_log.hash_v1 IS
	'True on rows written before 1.3, whose hash has format v1 (over the detail''s text); NULL on later rows (format v2).';

-- The bytes the v2 hash covers for a jsonb detail: the value as PostgreSQL
-- stores it, which needs no rendering.  For verifiers outside lockbox.
CREATE FUNCTION lockbox.jsonb_bytes(jsonb) RETURNS bytea
	AS 'MODULE_PATHNAME', 'lockbox_jsonb_bytes'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION lockbox.jsonb_bytes(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.jsonb_bytes(jsonb) TO lockbox_auditor, lockbox_approver;
COMMENT ON FUNCTION lockbox.jsonb_bytes(jsonb) IS
	'The binary form of a jsonb value, as the audit hash format v2 covers a row''s detail (README "The audit log").';

-- an access or refused row's detail, as 1.2 stored it
CREATE FUNCTION lockbox.access_detail(s lockbox.audit_statement, a lockbox.audit_log)
	RETURNS jsonb LANGUAGE sql IMMUTABLE
	AS $$
SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
		'relation', s.relation, 'command', s.command, 'query', s.query,
		'query_length', a.query_length, 'query_sha256', a.query_sha256,
		'reason', a.reason, 'pid', a.pid, 'node', a.node,
		'statements', COALESCE(a.statements, 1), 'last_at_usec', a.last_at_usec))
$$;
REVOKE ALL ON FUNCTION lockbox.access_detail(lockbox.audit_statement, lockbox.audit_log) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.access_detail(lockbox.audit_statement, lockbox.audit_log)
	TO lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor;
COMMENT ON FUNCTION lockbox.access_detail(lockbox.audit_statement, lockbox.audit_log) IS
	'The detail of an access or refused audit row written from 1.3 on, as lockbox.audit shows it.';

CREATE VIEW lockbox.audit WITH (security_barrier) AS
SELECT a.seq, a.at, COALESCE(a.session_user_name, a.actor)::pg_catalog.name AS session_user_name,
	   a.actor::pg_catalog.name AS actor, a.event, a.request_id, a.tenant,
	   CASE WHEN a.statement_id IS NULL THEN a.detail
			ELSE lockbox.access_detail(s, a) END AS detail,
	   COALESCE(a.parents, ARRAY[a.seq OPERATOR(pg_catalog.-) 1]) AS parents, a.hash
  FROM lockbox.audit_log a
  LEFT JOIN lockbox.audit_statement s ON s.id OPERATOR(pg_catalog.=) a.statement_id
 WHERE (SELECT lockbox.sees_all())
	OR (a.tenant IS NOT NULL AND EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE ap.tenant OPERATOR(pg_catalog.=) a.tenant
				   AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE')))
	OR EXISTS (SELECT 1 FROM lockbox.request r
				WHERE r.id OPERATOR(pg_catalog.=) a.request_id
				  AND r.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT lockbox.me()));
COMMENT ON VIEW lockbox.audit IS
	'The tamper-evident audit of every lifecycle step and engineer statement, with each row''s hash (lockbox_verify_audit checks them). Shown to whom the requests are shown.';

CREATE VIEW lockbox.access_log WITH (security_barrier) AS
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
	(SELECT a.at, a.actor, a.request_id, a.tenant, a.event, a.detail,
		   a.statement_id, a.statements, a.last_at_usec, a.reason, a.node,
		   a.query_length, a.query_sha256, a.session_user_name, a.pid, a.seq
	  FROM lockbox.audit_log a
	 WHERE (SELECT lockbox.sees_all())
	   AND a.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
	 ORDER BY a.at DESC)
	UNION ALL
	-- engineers: their own
	(SELECT a.at, a.actor, a.request_id, a.tenant, a.event, a.detail,
		   a.statement_id, a.statements, a.last_at_usec, a.reason, a.node,
		   a.query_length, a.query_sha256, a.session_user_name, a.pid, a.seq
	  FROM lockbox.audit_log a
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND a.actor OPERATOR(pg_catalog.=) pg_catalog."current_user"()::pg_catalog.text COLLATE pg_catalog."default"
	   AND a.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
	 ORDER BY a.at DESC)
	UNION ALL
	-- approvers: their (first) tenant's
	(SELECT a.at, a.actor, a.request_id, a.tenant, a.event, a.detail,
		   a.statement_id, a.statements, a.last_at_usec, a.reason, a.node,
		   a.query_length, a.query_sha256, a.session_user_name, a.pid, a.seq
	  FROM lockbox.audit_log a
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND a.actor OPERATOR(pg_catalog.<>) pg_catalog."current_user"()::pg_catalog.text COLLATE pg_catalog."default"
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
	(SELECT a.at, a.actor, a.request_id, a.tenant, a.event, a.detail,
		   a.statement_id, a.statements, a.last_at_usec, a.reason, a.node,
		   a.query_length, a.query_sha256, a.session_user_name, a.pid, a.seq
	  FROM lockbox.audit_log a
	 WHERE NOT (SELECT lockbox.sees_all())
	   AND a.actor OPERATOR(pg_catalog.<>) pg_catalog."current_user"()::pg_catalog.text COLLATE pg_catalog."default"
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
) AS a
  -- (joined above the branches, read newest first: a LIMIT looks up only
  -- the statements of the rows it returns)
  LEFT JOIN lockbox.audit_statement s ON s.id OPERATOR(pg_catalog.=) a.statement_id
 ORDER BY a.at DESC;
COMMENT ON VIEW lockbox.access_log IS
	'Engineers'' statements on protected data, allowed or refused, newest first: one row per relation and covering request (statements a session repeated are counted in one row). Each caller sees their own, their tenants'', or (reviewers, auditors) all.';
REVOKE ALL ON lockbox.audit, lockbox.access_log FROM PUBLIC;
GRANT SELECT ON lockbox.audit, lockbox.access_log
	TO lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor;
CREATE TRIGGER access_log_read_only INSTEAD OF INSERT OR UPDATE OR DELETE
	ON lockbox.access_log FOR EACH ROW EXECUTE FUNCTION lockbox.read_only_view();
