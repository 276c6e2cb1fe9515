"""The dialects' pure conversions: Daytona builds, the daemon's file modes, the
platforms' timestamps, and native validation turned into the platform's 400."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sandbay.dialects.daytona.shapes import DaytonaBuildInfo, DaytonaCreateSandbox, to_create
from sandbay.dialects.daytona.toolbox import DaytonaFileInfo
from sandbay.dialects.kit import command_text, iso_millis, native, number, whole_up
from sandbay.domain.environments import EnvironmentCreate
from sandbay.domain.errors import InvalidRequest
from sandbay.domain.files import FileInfo, FileType


def test_timestamps_are_utc_milliseconds_with_z() -> None:
    moment = datetime(2025, 7, 19, 19, 57, 5, 69_999, tzinfo=timezone(timedelta(hours=2)))
    assert iso_millis(moment) == "2025-07-19T17:57:05.069Z"
    assert iso_millis(datetime(2025, 1, 1)) == "2025-01-01T00:00:00.000Z"
    assert iso_millis(None) is None


def test_numbers_and_commands_read_as_the_platforms_show_them() -> None:
    assert number(2.0) == 2 and isinstance(number(2.0), int) and number(0.5) == 0.5
    assert (whole_up(0.5), whole_up(2.0), whole_up(2.01)) == (1, 2, 3)
    assert (
        command_text(["python3", "-c", "print('a b')"]) == "python3 -c 'print('\"'\"'a b'\"'\"')'"
    )
    assert command_text("echo hi") == "echo hi" and command_text(None) is None


def test_native_validation_is_a_400_naming_the_field() -> None:
    with pytest.raises(InvalidRequest, match="memory_mb"):
        native(EnvironmentCreate, memory_mb=1)
    assert native(EnvironmentCreate, name=None, cpu=2).cpu == 2


def _create(**fields: object) -> EnvironmentCreate:
    return to_create(DaytonaCreateSandbox.model_validate(fields))


def test_daytona_create_maps_resources_network_and_from_only_builds() -> None:
    body = _create(
        buildInfo={"dockerfileContent": "# base\nFROM debian:12.9 AS base\n"},
        memory=2,
        disk=5,
        cpu=2,
        networkAllowList="10.0.0.0/8, 192.168.1.0/24",
        autoDeleteInterval=0,
        autoPauseInterval=15,
    )
    assert body.image == "debian:12.9" and body.memory_mb == 2048 and body.disk_gb == 5
    assert body.network_allow_list == ["10.0.0.0/8", "192.168.1.0/24"]
    assert body.auto_delete_interval == 0 and body.cpu == 2 and body.auto_pause_interval == 15
    assert _create(snapshot="sandbay-base:latest").image == "sandbay-base:latest"


@pytest.mark.parametrize(
    "fields",
    [
        {"snapshot": "x", "buildInfo": DaytonaBuildInfo(dockerfile_content="FROM y")},
        {"networkAllowList": "not-a-cidr"},
        {"kvm": True},
        {"secrets": [{"TOKEN": "a"}, {"TOKEN": "b"}]},
        {"domainAllowList": "https://not a name"},
        {"outboundProxyUrl": "http://proxy:3128"},
        {"volumes": [{"volumeId": "v", "mountPath": "/workspace"}]},
    ],
)
def test_daytona_create_refuses_what_it_cannot_do(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        _create(**fields)


def test_file_info_prints_modes_as_the_daemon_does() -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    directory = FileInfo(
        name="d", path="/w/d", type=FileType.DIRECTORY, is_dir=True, size=4096,
        mode="0755", modified_at=when, owner="root", group="root",
    )  # fmt: skip
    shown = DaytonaFileInfo.of(directory).model_dump(by_alias=True)
    assert shown["mode"] == "drwxr-xr-x" and shown["permissions"] == "0755"
    assert shown["isDir"] is True and shown["modifiedAt"] == "2025-01-02T03:04:05Z"
    assert shown["modTime"].startswith("2025-01-02 03:04:05")
    plain = directory.model_copy(update={"type": FileType.FILE, "is_dir": False, "mode": "4640"})
    assert DaytonaFileInfo.of(plain).mode == "-rw-r-----"
