"""Configuration: defaults, system and user files, policies, schedules, windows,
retention, storage units, and the sybackup:: option precedence."""

from __future__ import annotations

import math
import os
import stat
import tomllib
from datetime import UTC, datetime

import pytest

from engine.config import (
    INFINITE_EXPIRATION,
    ArchiveOptions,
    builtin_defaults,
    load_config,
    parse_retention,
    parse_sybackup_options,
    parse_window,
    resolve_archive_options,
    short_hostname,
    user_config_text,
)
from engine.home import Home
from engine.jobs.status import (
    BACKUP_WINDOW_CLOSED,
    INVALID_PARAMETER,
    NO_SCHEDULE_OF_TYPE,
    NO_SUCH_POLICY,
    STORAGE_UNIT_UNAVAILABLE,
    StatusError,
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SYBAR_SYSTEM_CONFIG", str(tmp_path / "etc" / "sybar.toml"))
    return Home(tmp_path / "home")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def system(home):
    return home.root.parent / "etc" / "sybar.toml"


# 2026-11-23 is a Monday
MON = datetime(2026, 11, 23)


def at(day: int, hh: int, mm: int = 0) -> datetime:
    """day 0 = Monday 2026-11-23."""
    return MON.replace(day=23 + day, hour=hh, minute=mm)


def test_builtin_defaults_and_the_user_file_written_on_first_use(home):
    cfg = load_config(home)
    assert cfg.master_server == "localhost"
    assert cfg.client == short_hostname() and "." not in cfg.client
    assert cfg.default_policy == "Sybase_ASE" and cfg.default_schedule == "Default-Application-Backup"
    pol = cfg.policy("Sybase_ASE")
    assert pol.type == "Sybase" and cfg.policy() is pol
    sched = pol.schedule("Default-Application-Backup")
    assert sched.schedule_type == 2 and sched.kind == "application_backup" and sched.accepts_user_backups
    assert sched.retention == "2 weeks" and sched.retention_seconds == 14 * 86400
    assert sched.expiration(1000.0) == 1000.0 + 14 * 86400
    assert sched.days == tuple(range(7)) and [w.text for w in sched.windows] == ["00:00-24:00"]
    for d in range(7):
        sched.check_window(at(d, 0, 0))
        sched.check_window(at(d, 23, 59))
    su = cfg.default_storage_unit
    assert su.name == "disk1" and su.type == "disk" and su.path == home.root / "storage" / "disk1"
    assert cfg.storage_unit("disk1") == su and cfg.storage_unit_for("Sybase_ASE") == su

    user = home.root / "sybar.toml"
    assert user.exists() and cfg.user_config_path == user and cfg.system_config_path is None
    assert stat.S_IMODE(os.stat(user).st_mode) == 0o600
    text = user.read_text()
    assert tomllib.loads(text) == {}  # everything is commented out: defaults stay defaults
    assert "SYBACKUP_POLICY" in text and "Default-Application-Backup" in text
    # loading again does not rewrite it
    user.write_text(text + "\n# mine\n")
    load_config(home)
    assert user.read_text().endswith("# mine\n")


def test_the_commented_user_file_documents_the_real_defaults():
    text = user_config_text("dbhost")
    uncommented = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    data = tomllib.loads(_toml_part(uncommented))
    expected = builtin_defaults()
    expected["client"] = "dbhost"
    pol = data["policies"]["Sybase_ASE"]
    assert pol.pop("scripts") == [] and pol.pop("storage_unit") == "disk1"
    assert data == expected


def _toml_part(text: str) -> str:
    """The lines of the uncommented template that are settings (not prose)."""
    keep = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("[") or ("=" in s and not s.endswith(".")):
            keep.append(line)
    return "\n".join(keep)


def test_system_then_user_config_later_wins(home):
    write(
        system(home),
        """
master_server = "backup-master"
client = "sysclient"
policy = "Nightly"

[policies.Nightly]
type = "Sybase"
storage_unit = "tape"
[policies.Nightly.schedules.Full]
type = "full"
retention = "1 month"
[policies.Nightly.schedules.Default-Application-Backup]
type = "application_backup"
retention = "infinity"
window = "08:00-18:00"
days = ["mon", "tue", "wed", "thu", "fri"]

[policies.Sybase_ASE.schedules.Default-Application-Backup]
window = "06:00-20:00"

[storage_units.tape]
type = "disk"
path = "/srv/tape"
""",
    )
    write(
        home.root / "sybar.toml",
        """
client = "userclient"
[policies.Sybase_ASE.schedules.Default-Application-Backup]
retention = "3 days"
""",
    )
    cfg = load_config(home)
    assert cfg.master_server == "backup-master"  # system over default
    assert cfg.client == "userclient"  # user over system
    assert cfg.default_policy == "Nightly"
    assert cfg.system_config_path == system(home)
    assert "system config" in cfg.origins["master_server"] and "user config" in cfg.origins["client"]
    assert cfg.origins["schedule"] == "the built-in defaults"
    # tables merge key by key
    s = cfg.policy("Sybase_ASE").schedule("Default-Application-Backup")
    assert s.retention_seconds == 3 * 86400  # user
    assert [w.text for w in s.windows] == ["06:00-20:00"]  # system
    assert s.days == tuple(range(7))  # default
    nightly = cfg.policy("Nightly")
    assert (
        nightly.schedule("Full").schedule_type == 0
        and nightly.schedule("Full").retention_seconds == 30 * 86400
    )
    assert nightly.user_backup_schedule().name == "Default-Application-Backup"
    inf = nightly.schedule("Default-Application-Backup")
    assert inf.retention_seconds == math.inf and inf.expiration(1e9) == INFINITE_EXPIRATION
    assert cfg.storage_unit_for(nightly).path.as_posix() == "/srv/tape"
    assert set(cfg.policies) == {"Sybase_ASE", "Nightly"}


def test_unknown_policy_schedule_and_storage_unit(home):
    cfg = load_config(home)
    with pytest.raises(StatusError) as e:
        cfg.policy("Oracle_Prod")
    assert e.value.status == NO_SUCH_POLICY == 230
    assert "Oracle_Prod" in str(e.value) and "Sybase_ASE" in str(e.value)
    with pytest.raises(StatusError) as e:
        cfg.policy().schedule("Weekly")
    assert e.value.status == NO_SCHEDULE_OF_TYPE == 240
    assert "Weekly" in str(e.value) and "Default-Application-Backup" in str(e.value)
    with pytest.raises(StatusError) as e:
        cfg.storage_unit("tape9")
    assert e.value.status == STORAGE_UNIT_UNAVAILABLE and "disk1" in str(e.value)


def test_user_backups_need_an_application_backup_schedule(home):
    write(
        home.root / "sybar.toml",
        """
[policies.AutoOnly]
[policies.AutoOnly.schedules.Full]
type = "full"
""",
    )
    pol = load_config(home).policy("AutoOnly")
    with pytest.raises(StatusError) as e:
        pol.user_backup_schedule()
    assert e.value.status == 240
    with pytest.raises(StatusError) as e:
        pol.user_backup_schedule("Full")
    assert e.value.status == 240 and "application_backup" in str(e.value)
    with pytest.raises(StatusError):
        pol.schedule()  # no name: the application backup schedule, and there is none


@pytest.mark.parametrize(
    "text, problem",
    [
        ("master_server = 5", "master_server: must be a string"),
        ("[policies.P]\ntype = 'Oracle'", "Sybase policies only"),
        ("[policies.P.schedules.S]\nretention = '2 fortnights'", "retention"),
        ("[policies.P.schedules.S]\nwindow = '8-18'", "HH:MM-HH:MM"),
        ("[policies.P.schedules.S]\nwindow = '08:00-25:00'", "outside 00:00-24:00"),
        ("[policies.P.schedules.S]\ndays = ['mon', 'funday']", "funday"),
        ("[policies.P.schedules.S]\ntype = 'sometimes'", "schedule type"),
        ("[policies.P.schedules.S]\nwindw = '08:00-18:00'", "windw"),
        ("colour = 'blue'", "colour"),
        ("[storage_units.x]\ntype = 'disk'", "needs a path"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_config_says_where_and_what(home, text, problem):
    write(home.root / "sybar.toml", text)
    with pytest.raises(StatusError) as e:
        load_config(home)
    assert e.value.status == INVALID_PARAMETER
    assert problem in str(e.value)
    assert str(home.root / "sybar.toml") in str(e.value)


def test_retention_strings():
    assert parse_retention("1 day") == 86400
    assert parse_retention("2 weeks") == 14 * 86400
    assert parse_retention("6 Months") == 180 * 86400
    assert parse_retention("1 year") == 365 * 86400
    assert parse_retention("12 hours") == 12 * 3600
    assert parse_retention("infinity") == math.inf
    for bad in ("", "weeks", "2", "-1 days", "1.5 days"):
        with pytest.raises(ValueError):
            parse_retention(bad)


def test_window_strings():
    w = parse_window("08:00-18:00")
    assert (w.start, w.duration, w.end_text) == (480, 600, "18:00")
    w = parse_window("00:00-24:00")
    assert (w.start, w.duration, w.end_text) == (0, 1440, "24:00")
    w = parse_window("22:00-06:00")
    assert (w.start, w.duration, w.end_text) == (1320, 480, "06:00")
    assert parse_window("9:30 - 17:15").text == "09:30-17:15"
    assert parse_window("08:00-08:00").duration == 0


def schedule_with(home, window, days='["mon", "tue", "wed", "thu", "fri"]'):
    write(
        home.root / "sybar.toml",
        f"""
[policies.Sybase_ASE.schedules.Default-Application-Backup]
window = {window}
days = {days}
""",
    )
    return load_config(home).policy().schedule()


def test_office_hours_window_and_the_opens_at_sentence(home):
    s = schedule_with(home, '"08:00-18:00"')
    s.check_window(at(0, 8, 0))  # Monday 08:00, open
    s.check_window(at(4, 17, 59))  # Friday 17:59
    with pytest.raises(StatusError) as e:
        s.check_window(at(1, 19, 30))  # Tuesday evening
    assert e.value.status == BACKUP_WINDOW_CLOSED == 196
    msg = str(e.value)
    assert "The backup window of schedule Default-Application-Backup opens at 08:00 on Wednesday" in msg
    assert "2026-11-25" in msg and "Tuesday 19:30" in msg
    with pytest.raises(StatusError) as e:
        s.check_window(at(2, 7, 59))  # Wednesday before it opens: today at 08:00
    assert "opens at 08:00 on Wednesday 2026-11-25" in str(e.value)
    with pytest.raises(StatusError) as e:
        s.check_window(at(4, 18, 0))  # Friday 18:00 closes; the weekend is closed
    assert "opens at 08:00 on Monday 2026-11-30" in str(e.value)
    with pytest.raises(StatusError) as e:
        s.check_window(at(5, 12, 0))  # Saturday
    assert "opens at 08:00 on Monday" in str(e.value)
    assert s.next_open(at(5, 12, 0)) == at(7, 8, 0)
    assert s.is_open(at(3, 12)) and not s.is_open(at(6, 12))


def test_window_wrapping_midnight(home):
    s = schedule_with(home, '"22:00-06:00"', '["fri"]')  # Friday night into Saturday morning
    s.check_window(at(4, 22, 0))
    s.check_window(at(4, 23, 59))
    s.check_window(at(5, 5, 59))  # Saturday early morning belongs to Friday's window
    for closed in (at(4, 21, 59), at(5, 6, 0), at(5, 22, 30), at(0, 2, 0)):
        with pytest.raises(StatusError) as e:
            s.check_window(closed)
        assert "opens at 22:00 on Friday" in str(e.value)
    # Saturday 06:00 -> next Friday
    assert s.next_open(at(5, 6, 0)) == datetime(2026, 12, 4, 22, 0)


def test_several_windows_and_aware_datetimes(home):
    s = schedule_with(home, '["08:00-12:00", "13:00-17:00"]')
    s.check_window(at(0, 9))
    s.check_window(at(0, 13))
    with pytest.raises(StatusError) as e:
        s.check_window(at(0, 12, 30))
    assert "opens at 13:00 on Monday" in str(e.value)
    aware = at(0, 12, 30).replace(tzinfo=UTC)
    assert s.next_open(aware) == at(0, 13).replace(tzinfo=UTC)


def test_a_schedule_that_never_opens(home):
    s = schedule_with(home, '"00:00-24:00"', "[]")
    with pytest.raises(StatusError) as e:
        s.check_window(at(0, 12))
    assert e.value.status == 196 and "never opens" in str(e.value)


def test_check_window_now(home):
    load_config(home).policy().schedule().check_window_now()  # the default is always open


# ---------------------------------------------------------------- sybackup:: options


def test_parse_sybackup_options():
    assert parse_sybackup_options("sybackup::") == {}
    assert parse_sybackup_options("sybackup::-SERV master1 -CLIENT dbhost -POLICY Syb -SCHED Default") == {
        "SERV": "master1",
        "CLIENT": "dbhost",
        "POLICY": "Syb",
        "SCHED": "Default",
    }
    assert parse_sybackup_options("SYBACKUP::-sched S -pol P  -serv m") == {
        "SCHED": "S",
        "POLICY": "P",
        "SERV": "m",
    }
    assert parse_sybackup_options("sybackup::SYBAR.mydb.D.0.1234.25-11-2026.10:00:00") == {
        "OBJECT": "SYBAR.mydb.D.0.1234.25-11-2026.10:00:00"
    }
    assert parse_sybackup_options("sybackup::SYBAR.mydb.D -SERV m") == {"OBJECT": "SYBAR.mydb.D", "SERV": "m"}
    assert parse_sybackup_options("sybackup::-SERV m SYBAR.mydb.D") == {"OBJECT": "SYBAR.mydb.D", "SERV": "m"}
    assert parse_sybackup_options('sybackup::-POLICY "Sybase_ASE"') == {"POLICY": "Sybase_ASE"}
    assert parse_sybackup_options("-CLIENT c") == {"CLIENT": "c"}  # without the prefix too


@pytest.mark.parametrize(
    "device, problem",
    [
        ("sybackup::-SERVR m", "Unknown option -SERVR"),
        ("sybackup::-SERV", "-SERV in the device"),
        ("sybackup::-SERV -CLIENT c", "needs a value"),
        ("sybackup::-POL a -POLICY b", "twice"),
        ("sybackup::one two", "more than one dump"),
        ('sybackup::-POLICY "unterminated', "cannot be read"),
    ],
)
def test_bad_sybackup_options(device, problem):
    with pytest.raises(StatusError) as e:
        parse_sybackup_options(device)
    assert e.value.status == INVALID_PARAMETER and problem in str(e.value)


def test_option_precedence_every_level(home):
    env_names = {"SYBACKUP_SERVER", "SYBACKUP_CLIENT", "SYBACKUP_POLICY", "SYBACKUP_SCHED"}

    def resolve(device="sybackup::", script=None, environ=None):
        return resolve_archive_options(
            parse_sybackup_options(device), script or {}, environ or {}, load_config(home)
        )

    # 1. built-in defaults
    o = resolve()
    assert o == ArchiveOptions(
        "localhost", short_hostname(), "Sybase_ASE", "Default-Application-Backup", None
    )
    assert set(o.origin.values()) == {"the built-in defaults"}

    # 2. system config over defaults
    write(
        system(home),
        'master_server = "sysmaster"\nclient = "sysclient"\npolicy = "SysPol"\nschedule = "SysSched"\n',
    )
    o = resolve()
    assert (o.master_server, o.client, o.policy, o.schedule) == (
        "sysmaster",
        "sysclient",
        "SysPol",
        "SysSched",
    )
    assert all("system config" in v for v in o.origin.values())

    # 3. user config over system config (two keys only: the others stay the system's)
    write(home.root / "sybar.toml", 'master_server = "usermaster"\npolicy = "UserPol"\n')
    o = resolve()
    assert (o.master_server, o.client, o.policy, o.schedule) == (
        "usermaster",
        "sysclient",
        "UserPol",
        "SysSched",
    )
    assert "user config" in o.origin["policy"] and "system config" in o.origin["client"]

    # 4. environment over user config
    environ = {"SYBACKUP_SERVER": "envmaster", "SYBACKUP_CLIENT": "envclient", "SYBACKUP_POLICY": "EnvPol",
               "SYBACKUP_SCHED": "EnvSched", "PATH": "/bin"}  # fmt: skip
    o = resolve(environ=environ)
    assert (o.master_server, o.client, o.policy, o.schedule) == (
        "envmaster",
        "envclient",
        "EnvPol",
        "EnvSched",
    )
    assert set(o.origin.values()) == {"environment"}

    # 5. script variables over the environment (and empty ones count as unset)
    script = {"SYBACKUP_SERVER": "scriptmaster", "SYBACKUP_POLICY": "ScriptPol", "SYBACKUP_SCHED": ""}
    o = resolve(script=script, environ=environ)
    assert (o.master_server, o.client, o.policy, o.schedule) == (
        "scriptmaster",
        "envclient",
        "ScriptPol",
        "EnvSched",
    )
    assert o.origin == {"master_server": "script variables", "client": "environment", "policy": "script variables",
                        "schedule": "environment"}  # fmt: skip

    # 6. the device string over everything
    o = resolve("sybackup::-POL DevPol -SCHED DevSched SYBAR.mydb.D", script, environ)
    assert (o.master_server, o.client, o.policy, o.schedule) == (
        "scriptmaster",
        "envclient",
        "DevPol",
        "DevSched",
    )
    assert o.object == "SYBAR.mydb.D" and o.origin["policy"] == "device string"
    o = resolve("sybackup::-SERV devmaster -CLIENT devclient -POLICY DevPol -SCHED DevSched", script, environ)
    assert (o.master_server, o.client, o.policy, o.schedule) == (
        "devmaster",
        "devclient",
        "DevPol",
        "DevSched",
    )
    assert set(o.origin.values()) == {"device string"} and o.object is None
    assert env_names <= set(environ)


def test_system_config_can_be_switched_off(home, monkeypatch):
    write(system(home), 'master_server = "sysmaster"\n')
    assert load_config(home).master_server == "sysmaster"
    monkeypatch.setenv("SYBAR_SYSTEM_CONFIG", "")
    assert load_config(home).master_server == "localhost"
