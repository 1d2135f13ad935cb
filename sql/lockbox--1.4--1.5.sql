/* lockbox--1.4--1.5.sql: upgrade lockbox from 1.4 to 1.5 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.5'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, ..., 1.3 to 1.4, then this one): a fresh 1.5 and an upgraded
-- 1.0 to 1.4 are the same by construction.
