-- Least privileges of the backup job's MariaDB account, applied after the account exists
-- (CREATE USER 'backup'@'%' IDENTIFIED BY <password from its secret file>).
-- mariadb-dump --single-transaction --routines --events --triggers needs:
--   SELECT     table rows, and the mysql.proc bodies behind --routines
--   SHOW VIEW  view definitions
--   TRIGGER    trigger definitions
--   EVENT      event definitions
-- Not granted: LOCK TABLES (--single-transaction takes a consistent snapshot instead of
-- locking), RELOAD and BINLOG MONITOR (with --single-transaction, --master-data=2 --gtid reads
-- the binary log position from the snapshot's binlog_snapshot_* status, with no global read
-- lock and no SHOW MASTER STATUS), PROCESS, and every write privilege.
-- Granted on *.* so a database added later is dumped without changing this file.
GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON *.* TO 'backup'@'%';
ALTER USER 'backup'@'%' REQUIRE SSL;
