/* lockbox--1.3--1.4.sql: upgrade lockbox from 1.3 to 1.4 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.4'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, 1.1 to 1.2, 1.2 to 1.3, then this one): a fresh 1.4 and an
-- upgraded 1.0, 1.1, 1.2 or 1.3 are the same by construction.

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
