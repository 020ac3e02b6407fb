"""isql's output layout over synthetic event sequences (no socket)."""

from __future__ import annotations

import datetime as dt
import io

from engine.isql.output import (
    DONE_ATTN,
    DONE_COUNT,
    DONE_ERROR,
    DONE_MORE,
    Layout,
    ResultWriter,
    display_width,
    format_message,
    format_value,
)
from engine.tds.tokens import Column, Done, EnvChange, Message, Row, RowFormat


def render(events, **kw) -> str:
    out = io.StringIO()
    w = ResultWriter(out, **kw)
    for e in events:
        w.feed(e)
    w.end_batch()
    return out.getvalue()


def select(columns, rows, count=None):
    events = [RowFormat(columns)] + [Row(tuple(r)) for r in rows]
    events.append(Done(DONE_COUNT, len(rows) if count is None else count, 0))
    return events


def test_result_set_layout_like_ase_isql():
    text = render(select([Column("name", "varchar", 10), Column("dbid", "int")],
                         [("master", 1), ("salesdb", 4)]))
    assert text.splitlines() == [
        " name       dbid        ",
        " ---------- ----------- ",
        " master               1 ",
        " salesdb              4 ",
        "",
        "(2 rows affected)",
    ]


def test_one_row_affected_singular_and_zero_rows():
    assert render(select([Column("x", "int")], [(7,)])).endswith("\n(1 row affected)\n")
    text = render(select([Column("x", "int")], []))
    assert text.splitlines() == [" x           ", " ----------- ", "", "(0 rows affected)"]


def test_dml_count_has_no_blank_line_and_no_header():
    assert render([Done(DONE_COUNT, 3, 0)]) == "(3 rows affected)\n"


def test_done_without_count_prints_nothing():
    assert render([Done(0, 0, 0)]) == ""
    assert render([Done(DONE_MORE, 0, 0), Done(0, 0, 0)]) == ""


def test_attention_done_prints_no_count_and_marks_cancelled():
    out = io.StringIO()
    w = ResultWriter(out)
    w.feed(Done(DONE_ATTN | DONE_COUNT, 5, 0))
    assert out.getvalue() == "" and w.cancelled


def test_column_widths_per_type():
    assert display_width(Column("a", "int")) == 11
    assert display_width(Column("a", "bigint")) == 20
    assert display_width(Column("a", "float")) == 20
    assert display_width(Column("a", "datetime")) == 26
    assert display_width(Column("a", "bit")) == 1
    assert display_width(Column("a", "varchar", 5)) == 5
    assert display_width(Column("a", "varchar", 0)) == 255  # TDS: 0 means 255
    assert display_width(Column("a", "binary", 4)) == 10
    assert display_width(Column("a_long_column_name", "bit")) == 18


def test_nulls_are_printed_and_aligned_by_type():
    text = render(select([Column("n", "int"), Column("s", "varchar", 6)], [(None, None)]))
    assert text.splitlines()[2] == "        NULL NULL   "


def test_numbers_right_strings_left():
    lines = render(select([Column("s", "varchar", 8), Column("f", "float"), Column("b", "bigint")],
                          [("ab", 1.5, 2**40)])).splitlines()
    assert lines[2] == " ab       " + "1.5".rjust(20) + " " + str(2**40).rjust(20) + " "


def test_value_formats():
    assert format_value(Column("d", "datetime"), dt.datetime(2026, 11, 25, 12, 34, 56)) == "Nov 25 2026 12:34PM"
    assert format_value(Column("d", "datetime"), dt.datetime(2026, 1, 5, 3, 4)) == "Jan  5 2026  3:04AM"
    assert format_value(Column("d", "datetime"), dt.datetime(2026, 1, 5, 0, 0)) == "Jan  5 2026 12:00AM"
    assert format_value(Column("b", "binary", 2), b"\x01\xab") == "0x01ab"
    assert format_value(Column("b", "bit"), True) == "1"
    assert format_value(Column("b", "bit"), 0) == "0"
    assert format_value(Column("f", "float"), 0.1) == "0.1"
    assert format_value(Column("s", "varchar", 3), None) == "NULL"


def test_value_wider_than_column_is_not_cut():
    lines = render(select([Column("s", "varchar", 2), Column("n", "int")], [("abcdef", 1)])).splitlines()
    assert lines[2] == " abcdef           1 "


def test_no_headers_with_b():
    text = render(select([Column("x", "int")], [(1,)]), headers=False)
    assert text.splitlines() == ["           1 ", "", "(1 row affected)"]


def test_column_separator():
    text = render(select([Column("a", "varchar", 3), Column("n", "int")], [("x", 2)]), colsep="|")
    assert text.splitlines()[:3] == ["|a  |n          |", "|---|-----------|", "|x  |          2|"]


def test_wide_rows_wrap_with_tab_continuation():
    cols = [Column("first", "varchar", 30), Column("second", "varchar", 30), Column("third", "varchar", 30)]
    lines = render(select(cols, [("a", "b", "c")]), width=80).splitlines()
    # 1+30+1+30 = 62 fits; third column would reach 93 > 80: it goes on a tab-led line
    assert lines[0] == " " + "first".ljust(30) + " " + "second".ljust(30) + " "
    assert lines[1] == "\t " + "third".ljust(30) + " "
    assert lines[2] == " " + "-" * 30 + " " + "-" * 30 + " "
    assert lines[3] == "\t " + "-" * 30 + " "
    assert lines[4].startswith(" a") and lines[5] == "\t " + "c".ljust(30) + " "
    # -w 250 keeps them on one line
    lines = render(select(cols, [("a", "b", "c")]), width=250).splitlines()
    assert len(lines[0]) == 94 and "\t" not in "".join(lines)


def test_single_column_wider_than_width_is_not_split():
    layout = Layout([Column("big", "varchar", 100)], width=80)
    assert layout.lines == [[0]]
    layout = Layout([Column("n", "int"), Column("big", "varchar", 100)], width=80)
    assert layout.lines == [[0], [1]]


def test_error_message_format():
    m = Message(2812, 16, 5, "Stored procedure 'sp_nope' not found.", "SYBAR", "", 1)
    assert format_message(m) == "Msg 2812, Level 16, State 5:\nServer 'SYBAR', Line 1:\nStored procedure 'sp_nope' not found."
    m = Message(208, 16, 1, "t not found.", "SYBAR", "sp_x", 3)
    assert format_message(m).splitlines()[1] == "Server 'SYBAR', Procedure 'sp_x', Line 3:"
    m = Message(4002, 14, 1, "Login failed.", "SYBAR", "", 0)
    assert format_message(m) == "Msg 4002, Level 14, State 1:\nServer 'SYBAR':\nLogin failed."


def test_informational_messages_print_text_only():
    m = Message(4141, 10, 1, "Backup Server: 3.42.1.1: DUMP is complete (database salesdb).", "SYBAR", "", 1)
    assert format_message(m) == "Backup Server: 3.42.1.1: DUMP is complete (database salesdb)."
    assert format_message(Message(0, 0, 1, "hello", "SYBAR", "", 1)) == "hello"


class FlushCounter(io.StringIO):
    def __init__(self):
        super().__init__()
        self.flushes = []

    def flush(self):
        self.flushes.append(self.getvalue())
        super().flush()


def test_each_message_is_flushed_as_it_arrives():
    out = FlushCounter()
    w = ResultWriter(out)
    w.feed(Message(4141, 10, 1, "Backup Server: 4.41.1.1: Creating new disk file x.", "SYBAR", "", 1))
    assert out.flushes[-1].endswith("Creating new disk file x.\n")
    w.feed(Message(4141, 10, 1, "Backup Server: 3.43.1.1: Dump phase number 1 completed.", "SYBAR", "", 1))
    assert out.flushes[-1].endswith("completed.\n")


def test_errors_are_collected_for_retserverror():
    out = io.StringIO()
    w = ResultWriter(out)
    w.feed(Message(1, 10, 1, "info", "S", "", 1))
    assert w.errors == []
    w.feed(Message(2812, 16, 5, "boom", "S", "", 1))
    w.feed(Done(DONE_ERROR, 0, 0))
    assert [m.number for m in w.errors] == [2812]
    w.reset_errors()
    assert w.errors == []


def test_envchange_tracks_database_and_prints_nothing():
    out = io.StringIO()
    w = ResultWriter(out)
    w.feed(EnvChange(1, "salesdb", "master"))
    assert out.getvalue() == "" and w.database == "salesdb"


def test_two_result_sets_in_one_batch():
    events = select([Column("a", "int")], [(1,)]) + select([Column("b", "varchar", 3)], [("x",), ("y",)])
    assert render(events).splitlines() == [
        " a           ", " ----------- ", "           1 ", "", "(1 row affected)",
        " b   ", " --- ", " x   ", " y   ", "", "(2 rows affected)",
    ]


def test_result_set_cut_short_still_ends_with_blank_line():
    assert render([RowFormat([Column("a", "int")]), Row((1,))]).endswith("           1 \n\n")
