/* lockbox--1.5--1.6.sql: upgrade lockbox from 1.5 to 1.6 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.6'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, ..., 1.4 to 1.5, then this one): a fresh 1.6 and an upgraded
-- 1.0 to 1.5 are the same by construction.

------------------------------------------------------------------------------
-- Statements recorded in parts (README "The access log").
--
-- Until 1.6 the access log kept one text per statement: the statement, then
-- "\n-- lockbox: parameters: <values>" when values were bound to its
-- parameters, then "\n-- lockbox: within: <client statement>" when it ran
-- inside another statement.  An engineer writes the statement and the
-- values, so a statement whose own text ended in such a line, or a value
-- holding a newline and such a line, passed for a context that was not the
-- statement's.  From 1.6 they are three fields: lockbox.audit_statement
-- keeps the statement's own text (query), its bound values (parameters) and
-- the client's statement (within_query), NULL where there are none, each
-- at most lockbox.access_log_max_query bytes, with its whole length and
-- sha256 where it was cut (as query_length and query_sha256 of
-- lockbox.audit_log, which from 1.6 describe the statement's own text).
-- The statement's digest, which each row's hash covers and verification
-- recomputes, covers them too; a statement without them has the digest it
-- had before.  Rows written before 1.6 keep their combined text (parameters
-- and within_query NULL), and their hashes.  Archives made from 1.6 carry the
-- parts in their rows as they carry the statement (statement_parameters,
-- ...); archives made before verify as before.
------------------------------------------------------------------------------
ALTER TABLE lockbox.audit_statement
	ADD COLUMN parameters text,
	ADD COLUMN parameters_length bigint,
	ADD COLUMN parameters_sha256 text,
	ADD COLUMN within_query text,
	ADD COLUMN within_length bigint,
	ADD COLUMN within_sha256 text;
COMMENT ON COLUMN lockbox.audit_statement.query IS
	'The statement''s own text (from 1.6; before, with its bound values and the client''s statement appended as comment lines).';
COMMENT ON COLUMN lockbox.audit_statement.parameters IS
	'The values bound to the statement''s parameters, as the server log shows them (NULL: none).';
COMMENT ON COLUMN lockbox.audit_statement.within_query IS
	'The statement the client sent, when this one ran inside it (a function, a DO block, EXECUTE, a trigger); NULL: none.';
COMMENT ON COLUMN lockbox.audit_statement.parameters_length IS
	'The whole length in bytes of the values, when parameters keeps only lockbox.access_log_max_query bytes of them; else NULL.';
COMMENT ON COLUMN lockbox.audit_statement.parameters_sha256 IS
	'The sha256 (hex) of the whole values, when parameters keeps only a prefix; else NULL.';
COMMENT ON COLUMN lockbox.audit_statement.within_length IS
	'The whole length in bytes of the client''s statement, when within_query keeps only lockbox.access_log_max_query bytes of it; else NULL.';
COMMENT ON COLUMN lockbox.audit_statement.within_sha256 IS
	'The sha256 (hex) of the whole client''s statement, when within_query keeps only a prefix; else NULL.';

-- an access or refused row's detail (lockbox.audit), with the parts
CREATE OR REPLACE FUNCTION lockbox.access_detail(s lockbox.audit_statement, a lockbox.audit_log)
	RETURNS jsonb LANGUAGE sql IMMUTABLE
	AS $$
SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
		'relation', s.relation, 'command', s.command, 'query', s.query,
		'query_length', a.query_length, 'query_sha256', a.query_sha256,
		'parameters', s.parameters, 'parameters_length', s.parameters_length,
		'parameters_sha256', s.parameters_sha256,
		'within_query', s.within_query, 'within_length', s.within_length,
		'within_sha256', s.within_sha256,
		'reason', a.reason, 'pid', a.pid, 'node', a.node,
		'statements', COALESCE(a.statements, 1), 'last_at_usec', a.last_at_usec))
$$;

CREATE OR REPLACE FUNCTION lockbox.audit_archive(before timestamptz, tip_seqs bigint[],
		OUT archive pg_catalog.regclass, OUT range_start timestamptz, OUT range_end timestamptz,
		OUT first_seq bigint, OUT last_seq bigint, OUT row_count bigint, OUT digest text)
	RETURNS SETOF record LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	p record;
	parts oid[];
	names text[];
	los timestamptz[];
	his timestamptz[];
	firsts bigint[] := '{}';
	lasts bigint[] := '{}';
	counts bigint[] := '{}';
	digests text[] := '{}';
	carried jsonb[] := '{}';
	anchors jsonb;
	meta jsonb;
	target text;
	oldest timestamptz;
	owner oid := (SELECT c.relowner FROM pg_class c WHERE c.oid = 'lockbox.audit_log'::regclass);
	nsp oid;
BEGIN
	SELECT array_agg(x.part ORDER BY x.lo), array_agg(x.name ORDER BY x.lo),
		   array_agg(x.lo ORDER BY x.lo), array_agg(x.hi ORDER BY x.lo)
	  INTO parts, names, los, his
	  FROM (SELECT c.oid AS part, c.relname::text AS name,
				   b[1]::timestamptz AS lo, b[2]::timestamptz AS hi
			  FROM pg_inherits i
			  JOIN pg_class c ON c.oid = i.inhrelid,
				   LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
										'^FOR VALUES FROM \(''([^'']*)''\) TO \(''([^'']*)''\)$') b
			 WHERE i.inhparent = 'lockbox.audit_log'::regclass
			   AND b IS NOT NULL) x
	 WHERE x.hi <= before;
	IF parts IS NULL THEN
		SELECT min(b[1]::timestamptz) INTO oldest
		  FROM pg_inherits i
		  JOIN pg_class c ON c.oid = i.inhrelid,
			   LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
									'^FOR VALUES FROM \(''([^'']*)''\)') b
		 WHERE i.inhparent = 'lockbox.audit_log'::regclass;
		RAISE EXCEPTION 'no lockbox audit partition ends at or before %', before
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = CASE WHEN oldest IS NULL THEN 'lockbox.audit_log has no monthly partition.'
						   ELSE format('The oldest partition of lockbox.audit_log begins at %s.', oldest) END,
				  HINT = 'Only whole months (UTC) of the audit are archived: pass the first instant after the last month to archive.';
	END IF;

	-- each month: its seqs, rows, digest, and the parents it links outside itself
	FOR i IN 1 .. cardinality(parts) LOOP
		EXECUTE format($q$
			SELECT pg_catalog.count(*), pg_catalog.min(a.seq), pg_catalog.max(a.seq),
				   pg_catalog.encode(pg_catalog.sha256(pg_catalog.string_agg(a.hash, ''::bytea ORDER BY a.seq)), 'hex'),
				   (SELECT COALESCE(jsonb_agg(jsonb_build_object('seq', e.seq,
							'hash', encode(COALESCE((SELECT l.hash FROM lockbox.audit_log l WHERE l.seq = e.seq LIMIT 1),
													(SELECT n.hash FROM lockbox.audit_anchor n WHERE n.seq = e.seq)), 'hex'))
							ORDER BY e.seq), '[]')
					  FROM (SELECT DISTINCT x.seq FROM lockbox.%1$I r,
								   unnest(COALESCE(r.parents, ARRAY[r.seq - 1])) x(seq)
							 WHERE NOT EXISTS (SELECT 1 FROM lockbox.%1$I o WHERE o.seq = x.seq)) e)
			  FROM lockbox.%1$I a$q$, names[i])
		  INTO row_count, first_seq, last_seq, digest, anchors;
		counts := counts || row_count;
		firsts := firsts || first_seq;
		lasts := lasts || last_seq;
		digests := digests || digest;
		carried := carried || anchors;
	END LOOP;

	-- the archived rows that stay linked: named by a remaining row, or heads
	INSERT INTO lockbox.audit_anchor (seq, hash, archive, archived_at)
	SELECT a.seq, a.hash, c.relname, now()
	  FROM lockbox.audit_log a JOIN pg_class c ON c.oid = a.tableoid
	 WHERE a.tableoid = ANY (parts)
	   AND (a.seq IN (SELECT unnest(COALESCE(r.parents, ARRAY[r.seq - 1])) FROM lockbox.audit_log r
					   WHERE r.tableoid <> ALL (parts))
			OR a.seq = ANY (tip_seqs));

	IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'lockbox_archive') THEN
		EXECUTE format('CREATE SCHEMA lockbox_archive AUTHORIZATION %I',
					   (SELECT rolname FROM pg_roles WHERE oid = owner));
		REVOKE ALL ON SCHEMA lockbox_archive FROM PUBLIC;
		-- auditors name archives to verify them; they read none
		GRANT USAGE ON SCHEMA lockbox_archive TO lockbox_auditor;
		COMMENT ON SCHEMA lockbox_archive IS
			'Months of the lockbox audit that lockbox_archive_audit() took out of lockbox.audit_log: verify each with lockbox_verify_audit_archive().';
	END IF;
	SELECT n.oid INTO nsp FROM pg_namespace n WHERE n.nspname = 'lockbox_archive';
	IF (SELECT n.nspowner FROM pg_namespace n WHERE n.oid = nsp) <> owner THEN
		RAISE EXCEPTION 'schema "lockbox_archive" is not owned by the owner of table "lockbox.audit_log"'
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'The archives go to schema lockbox_archive, which must belong to the extension owner: drop or rename the other one.';
	END IF;

	FOR i IN 1 .. cardinality(parts) LOOP
		archive := NULL;
		range_start := los[i];
		range_end := his[i];
		first_seq := firsts[i];
		last_seq := lasts[i];
		row_count := counts[i];
		digest := digests[i];
		EXECUTE format('ALTER TABLE lockbox.audit_log DETACH PARTITION lockbox.%I', names[i]);
		-- the trigger of its own; the cloned ones went with DETACH
		EXECUTE format('DROP TRIGGER audit_log_no_truncate ON lockbox.%I', names[i]);
		IF row_count = 0 THEN
			EXECUTE format('DROP TABLE lockbox.%I', names[i]);
			RETURN NEXT;
			CONTINUE;
		END IF;
		meta := jsonb_build_object(
			'lockbox_archive', 1,
			'range_start', to_char(los[i] AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
			'range_end', to_char(his[i] AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
			'first_seq', first_seq, 'last_seq', last_seq, 'rows', row_count,
			'digest', digest, 'anchors', carried[i]);
		target := names[i];
		IF EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = nsp AND c.relname = target) THEN
			target := names[i] || '_' || last_seq;
			EXECUTE format('ALTER TABLE lockbox.%I RENAME TO %I', names[i], target);
		END IF;
		-- the text of the statement each access or refused row names, in
		-- the row: the archive verifies on its own, wherever it is restored
		-- (lockbox.audit_statement keeps every statement, for the live log)
		EXECUTE format('ALTER TABLE lockbox.%I ADD COLUMN statement_relation text,'
					   ' ADD COLUMN statement_command text, ADD COLUMN statement_query text,'
					   ' ADD COLUMN statement_parameters text, ADD COLUMN statement_parameters_length bigint,'
					   ' ADD COLUMN statement_parameters_sha256 text, ADD COLUMN statement_within_query text,'
					   ' ADD COLUMN statement_within_length bigint, ADD COLUMN statement_within_sha256 text', target);
		EXECUTE format('UPDATE lockbox.%I a SET statement_relation = s.relation,'
					   ' statement_command = s.command, statement_query = s.query,'
					   ' statement_parameters = s.parameters, statement_parameters_length = s.parameters_length,'
					   ' statement_parameters_sha256 = s.parameters_sha256, statement_within_query = s.within_query,'
					   ' statement_within_length = s.within_length, statement_within_sha256 = s.within_sha256'
					   '  FROM lockbox.audit_statement s WHERE s.id = a.statement_id', target);
		EXECUTE format('ALTER TABLE lockbox.%I SET SCHEMA lockbox_archive', target);
		EXECUTE format('COMMENT ON TABLE lockbox_archive.%I IS %L', target, meta::text);
		archive := format('lockbox_archive.%I', target)::regclass;
		RETURN NEXT;
	END LOOP;
END
$$;


------------------------------------------------------------------------------
-- History: an auditor's (a reviewer's) access log of the last hour, and the
-- parts of a statement as columns (README "History and retention", "The
-- access log").
--
-- lockbox.access_log is a union of branches, one per kind of caller, each
-- guarded by a test the planner evaluates once.  A guard stops a branch from
-- running, not from being set up: every question set up the reviewers' and
-- auditors' branch, its scan of every partition of the log, for engineers
-- and approvers too (more with every month).  From 1.6 that branch bounds
-- the time it reads by lockbox.sees_all_until(true): 'infinity' for
-- reviewers and auditors, NULL for the others, which keeps every row out
-- and lets the executor prune every partition when the question starts.
-- That bound is its guard.  (The same bound on the engineers' and
-- approvers' branches, for reviewers and auditors, cost engineers and
-- approvers more than it saved auditors: it is evaluated again for each row
-- a branch looks up; bench/README.md, "history", 1.6.)  And a row's last_at
-- is its at, without arithmetic, when it records one statement
-- (last_at_usec NULL) and is not a row written before 1.3.
--
-- The view gains, at the end, the parts of a statement (see "Statements
-- recorded in parts" above): parameters, within_query, and, when they were
-- cut, their whole length and sha256 (parameters_length, within_length are
-- the stored text's length when it is whole, as query_length).
------------------------------------------------------------------------------
CREATE FUNCTION lockbox.sees_all_until(for_all boolean) RETURNS timestamptz
	LANGUAGE sql STABLE PARALLEL UNSAFE
	AS $$ SELECT CASE WHEN lockbox.sees_all() OPERATOR(pg_catalog.=) for_all
				 THEN 'infinity'::pg_catalog.timestamptz END $$;
REVOKE ALL ON FUNCTION lockbox.sees_all_until(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.sees_all_until(boolean)
	TO lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor;
COMMENT ON FUNCTION lockbox.sees_all_until(boolean) IS
	'For lockbox.access_log: the latest time a branch reads, infinity when the calling role sees everything (for_all) or does not (not for_all), else NULL, which reads nothing and lets the executor prune every partition when the statement starts.';

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
	last_at CONSTANT text := $c$CASE WHEN a.last_at_usec IS NULL AND a.detail IS NULL THEN a.at
		   ELSE a.at OPERATOR(pg_catalog.+) (interval '1 microsecond' OPERATOR(pg_catalog.*)
		   COALESCE(a.last_at_usec,
					(a.detail OPERATOR(pg_catalog.->>) 'last_at_usec')::pg_catalog.int8, 0)::pg_catalog.float8) END$c$;
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
	   %1$s AS last_at,
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
	   a.seq, s.parameters, s.within_query,
	   COALESCE(s.parameters_length, pg_catalog.octet_length(s.parameters)) AS parameters_length,
	   s.parameters_sha256,
	   COALESCE(s.within_length, pg_catalog.octet_length(s.within_query)) AS within_length,
	   s.within_sha256$c$, last_at);

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
			 WHERE a.at OPERATOR(pg_catalog.<=) lockbox.sees_all_until(true)
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

COMMENT ON VIEW lockbox.access_log IS
	'Engineers'' statements on protected data, allowed or refused, newest first: one row per relation and covering request (statements a session repeated are counted in one row). Each caller sees their own, their tenants'', or (reviewers, auditors) all. query is the statement''s own text; parameters its bound values and within_query the client''s statement it ran within (from 1.6; rows written before keep them in query).';

-- ---------------------------------------------------------------------
-- Security: the database lockbox's requests were made in.
--
-- CREATE DATABASE ... TEMPLATE copies lockbox's tables with the rest: the
-- copy's approved requests would grant access the tenants approved for
-- another database, and its audit would go on from the same rows as the
-- original's.  lockbox.installation holds the oid of the database lockbox
-- was installed in (written here, so at CREATE EXTENSION and at the update
-- to 1.6; pg_upgrade keeps database oids; a dump restored runs CREATE
-- EXTENSION afresh).  Where it names another database the library takes the
-- database for a copy: no request grants access, every function that
-- changes lockbox's state is refused (55000) and the worker does nothing,
-- until lockbox_adopt_database() records the database as its own, with
-- every request made until then void in it (requests_void_through), and
-- audits the copy (event database_adopted).
-- ---------------------------------------------------------------------
CREATE TABLE lockbox.installation (
	datid					pg_catalog.oid NOT NULL,
	requests_void_through	bigint NOT NULL DEFAULT 0,
	recorded_at				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	one_row					boolean NOT NULL DEFAULT true PRIMARY KEY CHECK (one_row)
);
INSERT INTO lockbox.installation (datid)
SELECT d.oid FROM pg_catalog.pg_database d
 WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database();
REVOKE ALL ON lockbox.installation FROM PUBLIC;
COMMENT ON TABLE lockbox.installation IS
	'The database lockbox was installed in (its oid), and the requests void here (made before lockbox_adopt_database adopted a copy): where datid is another database''s, this one is a copy in which no request grants access.';

CREATE FUNCTION @extschema@.lockbox_adopt_database() RETURNS bigint
	AS 'MODULE_PATHNAME', 'lockbox_adopt_database'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@.lockbox_adopt_database() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.lockbox_adopt_database() IS
	'Makes a copy of a database with lockbox (CREATE DATABASE ... TEMPLATE) lockbox''s own (superuser or extension owner): every request made until now is void in it, the audit records the copy (database_adopted); returns the highest request id made void.';

------------------------------------------------------------------------------
-- Comments on every object of the extension (1.6): \dt+, \ds+, \dn+ and
-- \dy+ explained lockbox's views and functions, and not its schema, its
-- tables, its sequences or its event trigger.  Those a DBA meets in psql,
-- in pg_dump's output and in lockbox.posture now say what they hold and who
-- writes them (test/comments.sql checks every one).
------------------------------------------------------------------------------
COMMENT ON SCHEMA lockbox IS
	'Customer Lockbox: requests, decisions, notifications and the hash-linked audit. Written only through lockbox''s functions; read through its views (README "Reference").';
COMMENT ON TABLE lockbox.tenant IS
	'Tenants under lockbox: whether their lockbox is on and how many approvals a request needs (lockbox_add_tenant, lockbox_set_enabled; view lockbox.tenants).';
COMMENT ON TABLE lockbox.approver IS
	'The roles that approve for each tenant (lockbox_add_approver, lockbox_remove_approver).';
COMMENT ON TABLE lockbox.protected_table IS
	'Tables under lockbox, with their tenant column or the one tenant they belong to, and what lockbox_unprotect restores (view lockbox.protected_tables).';
COMMENT ON TABLE lockbox.request IS
	'Access requests and their lifecycle, never deleted (lockbox_request and the transitions; view lockbox.requests).';
COMMENT ON SEQUENCE lockbox.request_id_seq IS
	'Request ids.';
COMMENT ON TABLE lockbox.decision IS
	'Reviewers'' and approvers'' votes on requests, one per role and per session user.';
COMMENT ON TABLE lockbox.notification IS
	'Messages to requesters, reviewers and approvers, and their delivery (view lockbox.notifications; lockbox_claim_notifications).';
COMMENT ON SEQUENCE lockbox.notification_id_seq IS
	'Notification ids.';
COMMENT ON TABLE lockbox.notify_outbox IS
	'NOTIFY lockbox messages the database''s lockbox worker has yet to send.';
COMMENT ON SEQUENCE lockbox.audit_seq IS
	'Audit row numbers (lockbox.audit_log.seq).';
COMMENT ON TABLE lockbox.revocation IS
	'Revocations recorded while another session held the request: the access ended at once, the worker moves the request to revoked.';
COMMENT ON TABLE lockbox.session_end IS
	'Engineers whose access ended and whose sessions the database''s lockbox worker is to end (lockbox.terminate_sessions).';
COMMENT ON SEQUENCE lockbox.session_end_id_seq IS
	'Ids of lockbox.session_end.';
COMMENT ON TABLE lockbox.extension IS
	'Extensions of approved requests'' access windows (lockbox_extend; view lockbox.extensions).';
COMMENT ON SEQUENCE lockbox.extension_id_seq IS
	'Extension ids.';
COMMENT ON TABLE lockbox.extension_decision IS
	'Approvers'' votes on extensions, one per role and per session user.';
COMMENT ON TABLE lockbox.contact IS
	'E-mail addresses of roles, for lockbox-notify (lockbox_set_contact).';
COMMENT ON TABLE lockbox.webhook IS
	'Webhook URLs of tenants, for lockbox-notify (lockbox_set_webhook).';
COMMENT ON SEQUENCE lockbox.audit_statement_id_seq IS
	'Ids of lockbox.audit_statement.';
COMMENT ON EVENT TRIGGER lockbox_sql_drop IS
	'A protected table that is dropped leaves lockbox.protected_table, audited (lockbox.on_sql_drop).';

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

-- lockbox.active_access: the open requests (request_open_idx) that are
-- approved, made in this database (in a copy of another database, made
-- after lockbox_adopt_database(): lockbox.installation; the copied requests
-- grant nothing, and so are not shown as active)
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
   AND r.id OPERATOR(pg_catalog.>)
		(SELECT i.requests_void_through FROM lockbox.installation i
		  WHERE i.datid OPERATOR(pg_catalog.=)
				(SELECT d.oid FROM pg_catalog.pg_database d
				  WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()))
   AND (r.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT lockbox.me())
		OR (SELECT lockbox.sees_all())
		OR EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE ap.tenant OPERATOR(pg_catalog.=) r.tenant
				   AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE')));
