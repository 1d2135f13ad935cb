/* lockbox--1.2--1.3.sql: upgrade lockbox from 1.2 to 1.3 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.3'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, 1.1 to 1.2, then this one): a fresh 1.3 and an upgraded 1.0,
-- 1.1 or 1.2 are the same by construction.
