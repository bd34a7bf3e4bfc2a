from datetime import UTC, datetime, timedelta, timezone

from provider.logplex import MAX_MESSAGE_BYTES, LogLine, body, frame, sanitise
from tests.heroku_standin.logplex import parse_frames

NOON = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def test_frame_is_the_octet_counted_rfc5424_line_heroku_md_shows():
    syslog = b"<190>1 2026-11-25T12:00:00+00:00 host app cloudmailin - - message text"
    assert frame(LogLine(NOON, "message text")) == str(len(syslog)).encode() + b" " + syslog


def test_octet_count_counts_bytes_not_characters():
    framed = frame(LogLine(NOON, "café ✉"))
    count, _, rest = framed.partition(b" ")
    assert int(count) == len(rest)
    assert int(count) > len(rest.decode())


def test_timestamps_are_shown_in_utc_whatever_zone_they_come_in():
    eastern = NOON.astimezone(timezone(timedelta(hours=-5)))
    naive = datetime(2026, 11, 25, 12, 0, 0)
    assert b" 2026-11-25T12:00:00+00:00 " in frame(LogLine(eastern, "x"))
    assert b" 2026-11-25T12:00:00+00:00 " in frame(LogLine(naive, "x"))


def test_newlines_inside_a_message_cannot_split_it_into_two_log_lines():
    assert sanitise("first\r\nsecond\tthird\u2028fourth") == "first second third fourth"


def test_overlong_messages_are_cut_on_a_character_boundary():
    cut = sanitise("é" * MAX_MESSAGE_BYTES)
    assert len(cut.encode()) <= MAX_MESSAGE_BYTES
    assert set(cut) == {"é"}


def test_a_batch_reads_back_frame_by_frame_with_the_agreed_fields():
    lines = [LogLine(NOON, "one\nline"), LogLine(NOON + timedelta(seconds=1), "cloudmailin: two")]
    frames = parse_frames(body(lines))
    assert [f.message for f in frames] == ["one line", "cloudmailin: two"]
    first = frames[0]
    assert (first.priority, first.version, first.hostname, first.app_name, first.procid) == (
        190, 1, "host", "app", "cloudmailin",
    )
    assert (first.msgid, first.structured_data) == ("-", "-")
    assert frames[1].timestamp == "2026-11-25T12:00:01+00:00"
