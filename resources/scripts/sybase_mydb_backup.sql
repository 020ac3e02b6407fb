-- Full dump of mydb through the archive API in four stripes: each stripe
-- becomes its own backup object, SYBAR.mydb.D.<stripe>.<pid>.<date>.<time>.
-- The options name the master server, policy and schedule; where a device
-- leaves one out, the script's SYBACKUP_* variables and then sybar.toml decide.
use master
go
dump database mydb
    to "sybackup::-SERV localhost -POLICY Sybase_ASE -SCHED Default-Application-Backup"
    stripe on "sybackup::-SERV localhost -POLICY Sybase_ASE -SCHED Default-Application-Backup"
    stripe on "sybackup::-SERV localhost -POLICY Sybase_ASE -SCHED Default-Application-Backup"
    stripe on "sybackup::-SERV localhost -POLICY Sybase_ASE -SCHED Default-Application-Backup"
    with compression = 101
go
