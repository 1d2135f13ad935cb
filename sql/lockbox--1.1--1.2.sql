/* lockbox--1.1--1.2.sql: upgrade lockbox from 1.1 to 1.2 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.2'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, then this one): a fresh 1.2 and an upgraded 1.0 or 1.1 are the
-- same by construction.

------------------------------------------------------------------------------
-- A notification queued for the worker's NOTIFY is its id alone: the worker
-- reads the payload from lockbox.notification when it sends it.  (The copy
-- of the payload was a third of the WAL a transition wrote.)
------------------------------------------------------------------------------
ALTER TABLE lockbox.notify_outbox DROP COLUMN payload;
