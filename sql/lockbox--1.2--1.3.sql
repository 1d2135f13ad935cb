/* lockbox--1.2--1.3.sql: upgrade lockbox from 1.2 to 1.3 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.3'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, 1.1 to 1.2, then this one): a fresh 1.3 and an upgraded 1.0,
-- 1.1 or 1.2 are the same by construction.

------------------------------------------------------------------------------
-- Retention
--
-- lockbox.audit_log becomes partitioned by month of "at" (UTC): the worker
-- creates each month's partition ahead (lockbox.audit_log_YYYY_MM, owned by
-- the extension owner, created at run time and so not extension members);
-- lockbox.audit_log_default catches a row no monthly partition takes (a clock
-- that jumped), and the worker moves such rows into their month's partition.
-- lockbox_archive_audit(before) detaches whole months into schema
-- lockbox_archive and keeps, in lockbox.audit_anchor, the seq and hash of
-- every archived row a remaining row links, so that what remains verifies.
------------------------------------------------------------------------------

-- The views that read lockbox.audit_log, as they are now: they are pointed
-- at the partitioned table below (same text, same options, same OID, so
-- their privileges, comments and triggers stay).
CREATE TEMPORARY TABLE lockbox_audit_views ON COMMIT DROP AS
SELECT DISTINCT v.oid::pg_catalog.regclass::pg_catalog.text AS name,
	   pg_catalog.pg_get_viewdef(v.oid) AS def,
	   pg_catalog.array_to_string(v.reloptions, ', ') AS options
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid
  JOIN pg_catalog.pg_class v ON v.oid OPERATOR(pg_catalog.=) r.ev_class
 WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
   AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.refobjid OPERATOR(pg_catalog.=) 'lockbox.audit_log'::pg_catalog.regclass
   AND v.oid OPERATOR(pg_catalog.<>) 'lockbox.audit_log'::pg_catalog.regclass;

ALTER TABLE lockbox.audit_log RENAME TO audit_log_1_2;
ALTER INDEX lockbox.audit_log_pkey RENAME TO audit_log_1_2_pkey;
ALTER INDEX lockbox.audit_log_request_idx RENAME TO audit_log_1_2_request_idx;
ALTER INDEX lockbox.audit_log_access_at_idx RENAME TO audit_log_1_2_access_at_idx;
ALTER INDEX lockbox.audit_log_access_tenant_idx RENAME TO audit_log_1_2_access_tenant_idx;
ALTER INDEX lockbox.audit_log_access_actor_idx RENAME TO audit_log_1_2_access_actor_idx;

-- The 1.2 columns.  No index on the partitioned table itself: each
-- partition has its own (lockbox.audit_partition_protect), so that pg_dump
-- restores the partitions the worker created beside the extension's table
-- without colliding with indexes an ATTACH would make.  seq is unique as
-- lockbox.audit_seq gives it, each partition's primary key, and
-- lockbox_verify_audit(), which fails on a repeated seq.
CREATE TABLE lockbox.audit_log (
	seq					bigint NOT NULL,
	at					timestamptz NOT NULL,
	session_user_name	name NOT NULL,
	actor				name NOT NULL,
	event				text NOT NULL,
	request_id			bigint,
	tenant				text,
	detail				jsonb NOT NULL,
	parents				bigint[] NOT NULL,
	hash				bytea NOT NULL
) PARTITION BY RANGE (at);
ALTER TABLE lockbox.audit_log ALTER COLUMN actor SET (n_distinct = -0.001);
REVOKE ALL ON lockbox.audit_log FROM PUBLIC;
COMMENT ON TABLE lockbox.audit_log IS
	'The audit log: append-only, hash-linked rows, partitioned by month of "at" (UTC). lockbox_archive_audit() detaches old months.';

-- Row triggers are cloned onto every partition; TRUNCATE triggers are not,
-- and each partition gets its own (lockbox.audit_partition_protect).
CREATE TRIGGER audit_log_append_only
	BEFORE UPDATE OR DELETE ON lockbox.audit_log
	FOR EACH ROW EXECUTE FUNCTION lockbox.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate
	BEFORE TRUNCATE ON lockbox.audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION lockbox.audit_log_append_only();
ALTER TABLE lockbox.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE lockbox.audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;

-- A partition's own indexes (those of 1.2's lockbox.audit_log), its
-- TRUNCATE trigger, every trigger ENABLE ALWAYS, no privilege but its
-- owner's, the planner's settings.
CREATE FUNCTION lockbox.audit_partition_protect(part pg_catalog.regclass)
	RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	name text := (SELECT c.relname FROM pg_class c WHERE c.oid = part);
BEGIN
	EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY (seq)', part, name || '_pkey');
	EXECUTE format('CREATE INDEX %I ON %s (request_id)', name || '_request_idx', part);
	EXECUTE format('CREATE INDEX %I ON %s (at) WHERE event = ANY (''{access,refused}''::text[])',
				   name || '_access_at_idx', part);
	EXECUTE format('CREATE INDEX %I ON %s (tenant, at) WHERE event = ANY (''{access,refused}''::text[])',
				   name || '_access_tenant_idx', part);
	EXECUTE format('CREATE INDEX %I ON %s (actor, at) WHERE event = ANY (''{access,refused}''::text[])',
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
REVOKE ALL ON FUNCTION lockbox.audit_partition_protect(pg_catalog.regclass) FROM PUBLIC;
COMMENT ON FUNCTION lockbox.audit_partition_protect(pg_catalog.regclass) IS
	'Internal: gives a partition of lockbox.audit_log its indexes and TRUNCATE trigger, makes its triggers fire in every session_replication_role, and sets its planner options.';

CREATE TABLE lockbox.audit_log_default PARTITION OF lockbox.audit_log DEFAULT;
SELECT lockbox.audit_partition_protect('lockbox.audit_log_default');
COMMENT ON TABLE lockbox.audit_log_default IS
	'Audit rows no monthly partition of lockbox.audit_log takes (a clock that jumped); the worker moves them into their month''s partition.';

-- the rows, as they were
INSERT INTO lockbox.audit_log (seq, at, session_user_name, actor, event,
		request_id, tenant, detail, parents, hash)
	SELECT seq, at, session_user_name, actor, event, request_id, tenant,
		   detail, parents, hash
	  FROM lockbox.audit_log_1_2;

DO $$
DECLARE
	v record;
BEGIN
	FOR v IN SELECT * FROM lockbox_audit_views ORDER BY name LOOP
		EXECUTE format('CREATE OR REPLACE VIEW %s%s AS %s', v.name,
					   CASE WHEN v.options <> '' THEN ' WITH (' || v.options || ')' ELSE '' END,
					   v.def);
	END LOOP;
END
$$;
DROP TABLE lockbox_audit_views;

ALTER SEQUENCE lockbox.audit_seq OWNED BY NONE;
DROP TABLE lockbox.audit_log_1_2;
ALTER SEQUENCE lockbox.audit_seq OWNED BY lockbox.audit_log.seq;

-- pg_dump keeps the partitions the worker creates as tables of their own
-- (they are not extension members) and this one as configuration
SELECT pg_catalog.pg_extension_config_dump('lockbox.audit_log_default', '');

-- The seq and hash of each archived row that a remaining row links (or that
-- was a head when archived): lockbox_verify_audit() takes a parent's hash
-- from here when its row is archived.  Append-only, like the log.
CREATE TABLE lockbox.audit_anchor (
	seq			bigint PRIMARY KEY,
	hash		bytea NOT NULL,
	archive		text NOT NULL,		/* the archive table it went to */
	archived_at	timestamptz NOT NULL
);
REVOKE ALL ON lockbox.audit_anchor FROM PUBLIC;
CREATE TRIGGER audit_anchor_append_only
	BEFORE UPDATE OR DELETE ON lockbox.audit_anchor
	FOR EACH ROW EXECUTE FUNCTION lockbox.audit_log_append_only();
CREATE TRIGGER audit_anchor_no_truncate
	BEFORE TRUNCATE ON lockbox.audit_anchor
	FOR EACH STATEMENT EXECUTE FUNCTION lockbox.audit_log_append_only();
ALTER TABLE lockbox.audit_anchor ENABLE ALWAYS TRIGGER audit_anchor_append_only;
ALTER TABLE lockbox.audit_anchor ENABLE ALWAYS TRIGGER audit_anchor_no_truncate;
SELECT pg_catalog.pg_extension_config_dump('lockbox.audit_anchor', '');
COMMENT ON TABLE lockbox.audit_anchor IS
	'The seq and hash of every archived audit row that a row still in lockbox.audit_log links: lockbox_verify_audit() checks those links against them.';

-- The monthly partitions: the one of each month from "from" to "upto"
-- (UTC), and of every month that has rows in lockbox.audit_log_default,
-- which move there.  Returns how many partitions it created, -1 when the
-- log has no row yet, -2 when the log is busy (and it did nothing).  The worker
-- calls it every few minutes, lockbox_archive_audit() before it archives.
CREATE FUNCTION lockbox.audit_partitions(from_at timestamptz, upto timestamptz)
	RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	m timestamptz;
	lo timestamptz;
	hi timestamptz;
	name text;
	made integer := 0;
	months timestamptz[];
	moving boolean;
BEGIN
	-- An empty log (a new install, or a restore before its data) gets no
	-- partition yet: those of a restore are all created before any row
	-- comes, and must not collide with ours.  The first row waits in the
	-- default partition.
	IF NOT EXISTS (SELECT 1 FROM lockbox.audit_log) THEN
		RETURN -1;
	END IF;
	months := ARRAY(
		SELECT g FROM generate_series(date_trunc('month', from_at, 'UTC'),
									  date_trunc('month', upto, 'UTC'), interval '1 month') g
		UNION
		SELECT DISTINCT date_trunc('month', d.at, 'UTC') FROM ONLY lockbox.audit_log_default d
		ORDER BY 1);
	IF NOT EXISTS (SELECT 1 FROM unnest(months) g
					WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
									   JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
									  WHERE i.inhparent = 'lockbox.audit_log'::regclass
										AND c.relname = 'audit_log_' || to_char(g AT TIME ZONE 'UTC', 'YYYY_MM'))) THEN
		RETURN 0;
	END IF;
	-- Rows to move out of the default partition: nobody reads or writes the
	-- log meanwhile (a query that planned without the new partition would
	-- miss them).  Else no audit row is written meanwhile (a writer that had
	-- routed a row to the default partition before the ATTACH would fail its
	-- partition constraint after it); readers go on.  Never waiting: with a
	-- lock held elsewhere (a long reader, a writer not yet committed), the
	-- worker tries again at its next pass.
	moving := EXISTS (SELECT 1 FROM ONLY lockbox.audit_log_default);
	BEGIN
		IF moving THEN
			LOCK TABLE lockbox.audit_log IN ACCESS EXCLUSIVE MODE NOWAIT;
		ELSE
			LOCK TABLE lockbox.audit_log IN EXCLUSIVE MODE NOWAIT;
			LOCK TABLE lockbox.audit_log_default IN ACCESS EXCLUSIVE MODE NOWAIT;
		END IF;
	EXCEPTION WHEN lock_not_available THEN
		RETURN -2;
	END;
	IF NOT moving AND EXISTS (SELECT 1 FROM ONLY lockbox.audit_log_default) THEN
		RETURN -2;			/* a row came meanwhile: next time */
	END IF;
	FOREACH m IN ARRAY months LOOP
		lo := m;
		hi := ((m AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
		name := 'audit_log_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM');
		IF EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
					 JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
					WHERE i.inhparent = 'lockbox.audit_log'::regclass
					  AND c.relname = name) THEN
			CONTINUE;
		END IF;
		IF to_regclass('lockbox.' || quote_ident(name)) IS NOT NULL THEN
			RAISE EXCEPTION 'relation "lockbox.%" already exists and is no partition of table "lockbox.audit_log"', name
				USING ERRCODE = 'duplicate_table';
		END IF;
		EXECUTE format('CREATE TABLE lockbox.%I (LIKE lockbox.audit_log INCLUDING DEFAULTS INCLUDING STORAGE)', name);
		IF EXISTS (SELECT 1 FROM ONLY lockbox.audit_log_default d WHERE d.at >= lo AND d.at < hi) THEN
			PERFORM lockbox.audit_move_default(format('lockbox.%I', name)::regclass, lo, hi);
		END IF;
		EXECUTE format('ALTER TABLE lockbox.audit_log ATTACH PARTITION lockbox.%I'
					   ' FOR VALUES FROM (%L) TO (%L)', name,
					   to_char(lo AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'),
					   to_char(hi AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
		PERFORM lockbox.audit_partition_protect(format('lockbox.%I', name)::regclass);
		made := made + 1;
	END LOOP;
	RETURN made;
END
$$;
REVOKE ALL ON FUNCTION lockbox.audit_partitions(timestamptz, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION lockbox.audit_partitions(timestamptz, timestamptz) IS
	'Internal (the worker, lockbox_archive_audit): creates the monthly partitions of lockbox.audit_log from from_at to upto, and of every month that has rows in lockbox.audit_log_default, moving those rows there.';

CREATE FUNCTION lockbox.audit_move_default(part pg_catalog.regclass,
		lo timestamptz, hi timestamptz) RETURNS bigint
	AS 'MODULE_PATHNAME', 'lockbox_audit_move_default' LANGUAGE C;
REVOKE ALL ON FUNCTION lockbox.audit_move_default(pg_catalog.regclass, timestamptz, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION lockbox.audit_move_default(pg_catalog.regclass, timestamptz, timestamptz) IS
	'Internal (lockbox.audit_partitions): moves the rows of one month from lockbox.audit_log_default into that month''s new partition, before it is attached.';

-- The work of lockbox_archive_audit(before), which holds lockbox.audit_log
-- locked and passes the audit's current heads (tip_seqs, tip_hashes): every
-- whole month before "before" leaves lockbox.audit_log for schema
-- lockbox_archive (a month without rows is dropped); the rows of those
-- months that a remaining row links, or that are heads, are kept in
-- lockbox.audit_anchor.  Each archive carries in its comment (JSON) its range,
-- seqs, row count, digest (sha256 of its rows' hashes in seq order) and the
-- seq and hash of each parent its rows link outside it; and each access or
-- refused row the text of the statement it names (columns statement_relation,
-- statement_command, statement_query, which only archives have), so that an
-- archive verifies without lockbox.audit_statement.  A row's parents are
-- seq - 1 where parents is NULL (Compact rows, below).
CREATE FUNCTION lockbox.audit_archive(before timestamptz, tip_seqs bigint[],
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
					   ' ADD COLUMN statement_command text, ADD COLUMN statement_query text', target);
		EXECUTE format('UPDATE lockbox.%I a SET statement_relation = s.relation,'
					   ' statement_command = s.command, statement_query = s.query'
					   '  FROM lockbox.audit_statement s WHERE s.id = a.statement_id', target);
		EXECUTE format('ALTER TABLE lockbox.%I SET SCHEMA lockbox_archive', target);
		EXECUTE format('COMMENT ON TABLE lockbox_archive.%I IS %L', target, meta::text);
		archive := format('lockbox_archive.%I', target)::regclass;
		RETURN NEXT;
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION lockbox.audit_archive(timestamptz, bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION lockbox.audit_archive(timestamptz, bigint[]) IS
	'Internal (lockbox_archive_audit): detaches the whole months of lockbox.audit_log before "before" into schema lockbox_archive and keeps the anchors the remaining rows need.';

CREATE FUNCTION @extschema@.lockbox_archive_audit(before timestamptz,
		OUT archive pg_catalog.regclass, OUT range_start timestamptz, OUT range_end timestamptz,
		OUT first_seq bigint, OUT last_seq bigint, OUT row_count bigint, OUT digest text)
	RETURNS SETOF record AS 'MODULE_PATHNAME', 'lockbox_archive_audit'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@.lockbox_archive_audit(timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.lockbox_archive_audit(timestamptz) IS
	'Archives the audit log (superuser or extension owner): every whole month (UTC) before "before" leaves lockbox.audit_log for a table of schema lockbox_archive, with an audit_archived row in the log; lockbox_verify_audit() still verifies what remains, lockbox_verify_audit_archive() each archive.';

CREATE FUNCTION @extschema@.lockbox_verify_audit_archive(archive pg_catalog.regclass,
		OUT ok boolean, OUT rows_checked bigint, OUT first_bad_seq bigint,
		OUT first_seq bigint, OUT last_seq bigint, OUT digest text)
	RETURNS record AS 'MODULE_PATHNAME', 'lockbox_verify_audit_archive'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@.lockbox_verify_audit_archive(pg_catalog.regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.lockbox_verify_audit_archive(pg_catalog.regclass)
	TO lockbox_auditor;
COMMENT ON FUNCTION @extschema@.lockbox_verify_audit_archive(pg_catalog.regclass) IS
	'Verifies an archive of the audit log (a table of schema lockbox_archive): every row''s hash and links, the parents it links outside itself against the anchors of its comment, and its rows, seqs and digest against those the comment records (and the audit_archived row of lockbox.audit_log, when this database has it).';

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
