-- pgTAP: every object of the extension (its functions, views, tables,
-- sequences, schema and event trigger), and every lockbox.* setting,
-- explains itself (\df+, \dv+, \dt+, \ds+, \dn+, \dy+, pg_settings): a new
-- one without a COMMENT ON (or, for a setting, a long description) fails here.
BEGIN;
SELECT plan(4);

SELECT is_empty($$
	SELECT d.objid::regprocedure::text
	  FROM pg_depend d
	  JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'lockbox'
	 WHERE d.refclassid = 'pg_extension'::regclass
	   AND d.classid = 'pg_proc'::regclass
	   AND d.deptype = 'e'
	   AND obj_description(d.objid, 'pg_proc') IS NULL
	 ORDER BY 1$$,
	'every function of the extension has a comment');

SELECT is_empty($$
	SELECT d.objid::regclass::text
	  FROM pg_depend d
	  JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'lockbox'
	  JOIN pg_class c ON c.oid = d.objid
	 WHERE d.refclassid = 'pg_extension'::regclass
	   AND d.classid = 'pg_class'::regclass
	   AND d.deptype = 'e'
	   AND c.relkind IN ('v', 'm')
	   AND obj_description(d.objid, 'pg_class') IS NULL
	 ORDER BY 1$$,
	'every view of the extension has a comment');

SELECT is_empty($$
	SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
	  FROM pg_depend d
	  JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'lockbox'
	 WHERE d.refclassid = 'pg_extension'::regclass
	   AND d.deptype = 'e'
	   AND d.classid NOT IN ('pg_type'::regclass)
	   AND NOT EXISTS (SELECT FROM pg_description c
	                    WHERE c.classoid = d.classid AND c.objoid = d.objid
	                      AND c.objsubid = 0)
	 ORDER BY 1$$,
	'every object of the extension has a comment (but the row types of its tables and views)');

SELECT is_empty($$
	SELECT name FROM pg_settings
	 WHERE name LIKE 'lockbox.%'
	   AND (short_desc IS NULL OR extra_desc IS NULL)
	 ORDER BY 1$$,
	'every lockbox setting has a description and a long description');

SELECT * FROM finish();
ROLLBACK;
