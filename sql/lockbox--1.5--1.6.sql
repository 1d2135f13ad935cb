/* lockbox--1.5--1.6.sql: upgrade lockbox from 1.5 to 1.6 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.6'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, ..., 1.4 to 1.5, then this one): a fresh 1.6 and an upgraded
-- 1.0 to 1.5 are the same by construction.
