-- Incremental backup of mydb: the transaction log since the last log dump,
-- in two sybackup:: stripes.  No -SCHED here: the schedule comes from the
-- script's SYBACKUP_SCHED (bphdb sets it: Automatic-Incremental when the
-- scheduler runs it, the schedule asked for when a DBA runs `sybar backup`).
-- A log dump needs a full dump of mydb first (sybase_mydb_backup).
use master
go
dump transaction mydb
    to "sybackup::-SERV localhost -POLICY Sybase_ASE"
    stripe on "sybackup::-SERV localhost -POLICY Sybase_ASE"
go
