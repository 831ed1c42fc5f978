"""Register maps: the default layout of any line, exports, and hand-written maps rejected naming the entry.

Hand-written maps are read from files as a plant would ship them: each malformed field, a key given
twice, a setpoint register that cannot reach its lever's limits finely enough is refused by name.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from configs import config_file, options
from hardware import ActuatorSpec, Lever, LineSpec
from hardware.modbus import (
    MAX_SETPOINT_STEP,
    CommandBlock,
    CommandImage,
    Encoding,
    InputImage,
    MapError,
    PlcFrame,
    PlcStatus,
    Role,
    StatusBit,
    Table,
    default_map,
    load_map,
    map_from_mapping,
)
from hardware.modbus.connect import modbus_line
from hardware.modbus.regmap import MAX_READ, counter_names
from hardware.twin import TwinLine
from tests.lines import FLOW5

SETPOINT_LEVERS = ["speed", "mode", "maintenance", "reorder"]


def full_spec(line: str = "flow5") -> LineSpec:
    return TwinLine.from_yaml(config_file("line", line), control={"levers": SETPOINT_LEVERS}).spec


@pytest.fixture(scope="module")
def spec() -> LineSpec:
    return TwinLine.from_yaml(FLOW5, control={"levers": SETPOINT_LEVERS}).spec


def as_data(spec: LineSpec) -> dict[str, Any]:
    return yaml.safe_load(default_map(spec).to_yaml())


@pytest.mark.parametrize("line", options("line"))
def test_every_shipped_line_gets_a_complete_map_read_in_few_requests(line):
    spec = full_spec(line)
    rmap = default_map(spec)
    assert {r.name for r in rmap.of(Role.SENSOR)} == {s.name for s in spec.sensors}
    assert {r.name for r in rmap.of(Role.COUNTER)} == set(counter_names())
    assert [r.name for r in rmap.setpoints] == [a.name for a in spec.actuators]
    plan = rmap.read_plan()
    inputs = [r for r in rmap.registers if r.table is Table.INPUT]
    assert all(b.count <= MAX_READ for b in plan)
    assert sum(b.count for b in plan) == sum(r.width for r in inputs)  # contiguous: nothing read twice or skipped
    # no entry is split between requests, so at most one more request than the register count needs
    assert len(plan) <= math.ceil(sum(r.width for r in inputs) / MAX_READ) + 1
    window = rmap.command_window
    assert window.count == 2 + 2 * len(spec.actuators)


def test_the_yaml_form_reads_back_to_the_same_map(spec, tmp_path):
    rmap = default_map(spec)
    path = tmp_path / "map.yaml"
    path.write_text(rmap.to_yaml())
    back = load_map(path, spec)
    assert back.registers == rmap.registers
    assert back.source == str(path)


def test_csv_and_markdown_list_every_tag_at_its_address(spec):
    rmap = default_map(spec)
    rows = list(csv.DictReader(io.StringIO(rmap.to_csv())))
    assert len(rows) == len(rmap.registers)
    for row, reg in zip(rows, rmap.registers, strict=True):
        assert (row["tag"], row["table"], int(row["address"]), row["type"]) == (
            reg.name,
            reg.table.value,
            reg.address,
            reg.encoding.type.value,
        )
    md = rmap.to_markdown()
    table_rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| tag")]
    assert len(table_rows) == len(rmap.registers)
    assert "| cut.vibration_mm_s | sensor | 1 | input | 4 |" in md


def test_frame_and_command_images_round_trip(spec):
    rmap = default_map(spec)
    line = TwinLine.from_yaml(FLOW5, seed=3, control={"levers": SETPOINT_LEVERS})
    frame = line.reset(seed=3)
    frame = line.advance(600.0)
    counters = line._plant.counters()
    status = PlcStatus(65534, 2**32 - 2, 1_764_547_200.123, StatusBit.REMOTE, 0b101, frozenset({Lever.SPEED}), 9, 60.0)
    ages = frame.time - frame.stamps
    published = PlcFrame(status, frame.values, ages, np.linspace(0.5, 1.0, len(spec.actuators)), counters, 2**32 - 2)
    image = InputImage(rmap, spec)
    back = image.decode(image.encode(published))
    assert back.status == dataclasses.replace(status, timestamp_s=pytest.approx(status.timestamp_s, abs=5e-4))
    assert back.counters == counters  # exact: integers and float64 totals
    np.testing.assert_allclose(back.values, frame.values, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(back.ages, ages, atol=0.005)
    commands = CommandImage(rmap)
    setpoints = np.full(len(commands.names), np.nan)
    setpoints[0] = 0.8
    block = commands.decode(commands.encode(CommandBlock(7, 65534, setpoints)))
    assert (block.heartbeat, block.sequence) == (7, 65534)
    assert block.setpoints[0] == pytest.approx(0.8, rel=1e-7)
    assert np.isnan(block.setpoints[1:]).all()


def entry_index(data: dict[str, Any], role: str, name: str) -> int:
    return next(i for i, r in enumerate(data["registers"]) if (r["role"], r["name"]) == (role, name))


def test_overlapping_registers_are_refused_naming_both_entries(spec):
    data = as_data(spec)
    i = entry_index(data, "sensor", "press.vibration_mm_s")
    data["registers"][i]["address"] -= 1  # now overlaps the sensor before it
    with pytest.raises(MapError, match=r"my\.yaml: entry \d+ \('press\.vibration_mm_s', sensor\).* overlaps entry \d+"):
        map_from_mapping(data, spec, "my.yaml")


def test_an_unmapped_sensor_is_refused_by_name(spec):
    data = as_data(spec)
    del data["registers"][entry_index(data, "sensor", "weld.bearing_temp_c")]
    with pytest.raises(MapError, match=r"my\.yaml: sensor 'weld\.bearing_temp_c' is unmapped"):
        map_from_mapping(data, spec, "my.yaml")


def test_a_command_outside_the_window_is_refused(spec):
    data = as_data(spec)
    data["registers"][entry_index(data, "command", "paint.speed")]["address"] = 500
    with pytest.raises(
        MapError, match=r"command entry 'paint\.speed' at holding 500 is outside the command window \(holding 0-33"
    ):
        map_from_mapping(data, spec, "my.yaml")


def test_a_range_the_type_cannot_carry_is_refused(spec):
    data = as_data(spec)
    i = entry_index(data, "sensor", "line.price_per_kwh")
    data["registers"][i].update(type="int16", scale=0.00001)
    with pytest.raises(MapError, match=r"\('line\.price_per_kwh', sensor\): range \[.*\] .* cannot fit int16"):
        map_from_mapping(data, spec, "my.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(colour="red"), r"unknown keys \['colour'\]"),
        (lambda r: r.update(type="int128"), r"type: 'int128' is not one of int16, uint16, int32, uint32, float32"),
        (lambda r: r.update(table="holding"), r"a sensor entry belongs in input registers"),
        (lambda r: r.update(name="cut.smell"), r"line 'flow5' has no sensor 'cut.smell'"),
        (lambda r: r.update(address=-4), r"address -4 .* is outside 0-65535"),
        (lambda r: r.update(address="ten"), r"address: expected a whole number, got 'ten'"),
        (lambda r: r.update(scale=0), r"scale must be a finite, non-zero number"),
    ],
)
def test_malformed_entries_are_refused_naming_file_and_entry(spec, change, message):
    data = as_data(spec)
    i = entry_index(data, "sensor", "cut.vibration_mm_s")
    change(data["registers"][i])
    with pytest.raises(MapError, match=rf"register map my\.yaml: entry {i} \(.*{message}"):
        map_from_mapping(data, spec, "my.yaml")


def test_a_map_for_another_line_and_an_unreadable_file_are_refused(spec, tmp_path):
    data = as_data(spec)
    data["line"] = "other"
    with pytest.raises(MapError, match="is for line 'other', not 'flow5'"):
        map_from_mapping(data, spec, "my.yaml")
    with pytest.raises(MapError, match=r"register map .*missing\.yaml: cannot read it"):
        load_map(tmp_path / "missing.yaml", spec)
    bad = tmp_path / "bad.yaml"
    bad.write_text("registers: [")
    with pytest.raises(MapError, match=r"bad\.yaml: cannot read it"):
        load_map(bad, spec)


def test_a_line_with_more_setpoints_than_one_write_carries_is_refused():
    speeds = tuple(ActuatorSpec(f"s{i}.speed", "ratio", 0.5, 1.2, 1.0, Lever.SPEED, i) for i in range(61))
    spec = LineSpec("wide", tuple(f"s{i}" for i in range(61)), ("A",), (), speeds, frozenset({Lever.SPEED}), 60.0)
    with pytest.raises(MapError, match="the command window takes 124 registers; one FC16 write carries at most 123"):
        default_map(spec)


def test_maps_live_in_files_a_person_can_edit(spec):
    text = default_map(spec).to_yaml()
    assert text.startswith("# Modbus register map of line flow5")
    data = yaml.safe_load(text)
    assert data["registers"][0] == {"name": "heartbeat", "role": "status", "table": "input", "address": 0,
                                    "type": "uint16", "unit": "count",
                                    "description": "PLC scan counter, wraps at 65535"}  # fmt: skip


@pytest.mark.parametrize(
    ("role", "name", "change", "message"),
    [
        ("status", "timestamp", {"type": "float32"}, r"must be a 64-bit type"),
        (
            "status",
            "timestamp",
            {"scale": 1e-12},
            r"must carry s since the epoch up to 2100 \(0-4\.10244e\+09 s\); "
            r"uint64 with scale 1e-12 and offset 0 carries \[0, 1\.84467e\+07\]",
        ),
        (
            "counter",
            "last_completion_s",
            {"type": "uint32"},
            r"must carry s since the epoch up to 2100 "
            r"\(0-4\.10244e\+09 s\); uint32 with scale 0\.001 and offset 0 carries \[0, 4\.29497e\+06\]",
        ),
        ("status", "heartbeat", {"type": "int16"}, r"must be uint16 with scale 1"),
        ("command", "sequence", {"type": "uint16", "scale": 2.0}, r"must be uint16 with scale 1"),
        ("status", "frame_seq", {"type": "float32"}, r"must be an unsigned integer with scale 1"),
        ("status", "frame_seq_end", {"address": 0}, r"must lie in the last read request"),
        ("status", "frame_seq_end", {"type": "uint16"}, r"must be uint32 as frame_seq is"),
        (
            "status",
            "control_period",
            {"type": "uint16", "scale": 1e-4},
            r"must carry the line's control period of 60 s; uint16 with scale 0\.0001 .* carries \[0, 6\.5534\]",
        ),
        ("status", "control_period", {"scale": 7.0}, r"uint32 with scale 7 and offset 0 carries it as 63 s"),
    ],
)
def test_the_protocol_registers_have_the_types_and_places_both_ends_rely_on(spec, role, name, change, message):
    data = as_data(spec)
    entry = data["registers"][entry_index(data, role, name)]
    if "address" in change:  # frame_seq_end first: every other input register moves up to make room
        for r in data["registers"]:
            if r["table"] == "input":
                r["address"] = 0 if r is entry else r["address"] + 2
    else:
        entry.update(change)
    with pytest.raises(MapError, match=rf"{role} entry '{name}' at .*{message}"):
        map_from_mapping(data, spec, "my.yaml")


def test_a_line_with_more_stations_than_the_alarms_word_has_bits_is_refused():
    speeds = tuple(ActuatorSpec(f"s{i}.speed", "ratio", 0.5, 1.2, 1.0, Lever.SPEED, i) for i in range(40))
    spec = LineSpec("many", tuple(f"s{i}" for i in range(40)), ("A",), (), speeds, frozenset({Lever.SPEED}), 60.0)
    with pytest.raises(MapError, match=r"alarms.*31 bits cannot flag 40 stations"):
        default_map(spec)


def write_map(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "plant_map.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("scale", "x10", r"scale: expected a number, got 'x10'"),
        ("low", None, r"low: expected a number, got None"),
        ("offset", True, r"offset: expected a number, got True"),
        ("offset", 10**400, r"offset: expected a number, got 1000000"),
        (
            "type",
            "float",
            r"type: 'float' is not one of int16, uint16, int32, uint32, float32, int64, uint64, float64$",
        ),
        ("role", "sensors", r"role: 'sensors' is not one of status, sensor, age, active, counter, command$"),
        ("table", "coils", r"table: 'coils' is not one of input, holding$"),
        ("word_order", "CDAB", r"word_order: 'CDAB' is not one of big, little$"),
        ("device_id", 1.5, r"device_id: expected a whole number, got 1\.5$"),
    ],
)
def test_a_malformed_field_names_file_entry_key_and_the_allowed_values(spec, tmp_path, key, value, message):
    data = as_data(spec)
    i = entry_index(data, "sensor", "cut.vibration_mm_s")
    data["registers"][i][key] = value
    path = write_map(tmp_path, data)
    with pytest.raises(MapError, match=rf"^register map {path}: entry {i} \('cut\.vibration_mm_s'\): {message}"):
        load_map(path, spec)


def test_a_numeric_string_yaml_reads_as_text_still_counts_as_a_number(spec, tmp_path):
    data = as_data(spec)
    data["registers"][entry_index(data, "sensor", "cut.vibration_mm_s")]["scale"] = "1e-3"
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(data).replace("'1e-3'", "1e-3"))  # YAML 1.1 reads 1e-3 (no dot) as a string
    assert load_map(path, spec).entry(Role.SENSOR, "cut.vibration_mm_s").encoding.scale == 0.001


def test_a_key_given_twice_in_an_entry_is_refused_naming_the_key_and_line(spec, tmp_path):
    text = default_map(spec).to_yaml()
    lines = text.splitlines()
    at = next(n for n, line in enumerate(lines) if "name: cut.vibration_mm_s, role: sensor" in line)
    lines[at] = lines[at][:-1] + ", type: int32, scale: 0.001}"  # PyYAML's safe_load would keep the second type
    path = tmp_path / "dup.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        MapError,
        match=rf"^register map {path}: cannot read it: line {at + 1}: key 'type' given twice in one mapping "
        rf"\(first on line {at + 1}\)$",
    ):
        load_map(path, spec)
    path.write_text("line: flow5\nline: flow5\nregisters: []\n")
    with pytest.raises(MapError, match=r"line 2: key 'line' given twice in one mapping \(first on line 1\)"):
        load_map(path, spec)


def test_a_setpoint_register_too_coarse_for_its_lever_is_refused_naming_the_resolution(spec, tmp_path):
    data = as_data(spec)
    data["registers"][entry_index(data, "command", "cut.speed")]["type"] = "int32"  # scale 1 for a 0.5-1.2 ratio
    path = write_map(tmp_path, data)
    i = entry_index(data, "command", "cut.speed")
    with pytest.raises(
        MapError,
        match=rf"^register map {path}: entry {i} \('cut\.speed', command\): int32 with scale 1 and offset 0 has a "
        r"resolution of 1 ratio, coarser than max_setpoint_step 0\.01 of the range \[0\.5, 1\.2\] of actuator "
        r"'cut\.speed' \(0\.007 ratio\); its limits would be written as \[1, 1\]$",
    ):
        load_map(path, spec)


def test_the_setpoint_resolution_threshold_is_configurable_and_spares_whole_number_levers(spec, tmp_path):
    data = as_data(spec)
    for name, change in (
        ("cut.speed", {"type": "int32", "scale": 0.01}),  # 70 steps over 0.5-1.2: coarser than 1 %
        ("cut.mode", {"type": "int32", "scale": 1.0}),  # modes 0, 1, 2 exactly
        ("cut.maintain", {"type": "int32", "scale": 1.0}),  # a request: 0 or 1
    ):
        data["registers"][entry_index(data, "command", name)].update(change)
    path = write_map(tmp_path, data)
    with pytest.raises(MapError, match=r"'cut\.speed', command\): int32 with scale 0\.01 .* resolution of 0\.01 ratio"):
        load_map(path, spec)
    rmap = load_map(path, spec, max_setpoint_step=0.02)
    speed = rmap.entry(Role.COMMAND, "cut.speed")
    assert (speed.low, speed.high) == (0.5, 1.2)  # a setpoint entry carries its actuator's limits
    assert MAX_SETPOINT_STEP == 0.01
    data["registers"][entry_index(data, "command", "cut.mode")]["scale"] = 2.0  # writes mode 1 as 0 or 2
    with pytest.raises(MapError, match=r"'cut\.mode', command\): a mode setpoint takes the whole numbers 0-2; int32 "):
        load_map(write_map(tmp_path, data), spec, max_setpoint_step=0.02)


def test_the_threshold_reaches_a_hand_written_map_through_the_hardware_config(spec, tmp_path):
    data = as_data(spec)
    data["registers"][entry_index(data, "command", "cut.speed")].update(type="int32", scale=0.01)
    path = write_map(tmp_path, data)
    definition = yaml.safe_load(FLOW5.read_text())
    with pytest.raises(MapError, match=r"coarser than max_setpoint_step 0\.01"):
        modbus_line(definition, ["speed"], None, map=str(path))
    line = modbus_line(definition, ["speed"], None, map=str(path), max_setpoint_step=0.02)  # no traffic until reset
    assert line.map.entry(Role.COMMAND, "cut.speed").encoding.scale == 0.01
    assert yaml.safe_load(config_file("hardware", "modbus").read_text())["max_setpoint_step"] == MAX_SETPOINT_STEP


def test_a_setpoint_range_other_than_its_actuators_is_refused(spec):
    data = as_data(spec)
    data["registers"][entry_index(data, "command", "cut.speed")]["low"] = 0.4
    with pytest.raises(
        MapError, match=r"range \[0\.4, 1\.2\] is not the limits \[0\.5, 1\.2\] of actuator 'cut\.speed'"
    ):
        map_from_mapping(data, spec, "my.yaml")


@pytest.mark.parametrize(
    ("role", "name", "key", "what"),
    [("sensor", "cut.vibration_mm_s", "high", "sensor"), ("active", "cut.speed", "low", "actuator")],
)
def test_a_sensor_or_active_setpoint_range_other_than_the_lines_is_refused(spec, role, name, key, what):
    data = as_data(spec)
    data["registers"][entry_index(data, role, name)][key] = 0.7  # the tag table would document it
    with pytest.raises(MapError, match=rf"\('{name}', {role}\): range \[.*\] is not the range \[.*\] of {what}"):
        map_from_mapping(data, spec, "my.yaml")
    del data["registers"][entry_index(data, role, name)][key]  # left out: the line's range stands
    map_from_mapping(data, spec, "my.yaml")


@pytest.mark.parametrize(
    ("name", "kind"), [("good_parts", "uint32"), ("energy_kwh", "uint64"), ("state_time_s.busy", "int64")]
)
def test_integer_counters_wrap_and_read_their_top_value(spec, name, kind):
    data = as_data(spec)
    data["registers"][entry_index(data, "counter", name)].update(type=kind, scale=0.5)  # as wide as before
    rmap = map_from_mapping(data, spec, "my.yaml")
    enc = rmap.entry(Role.COUNTER, name).encoding
    assert enc.wraps
    top = Encoding(enc.type).encode(math.nan)  # what a measurement of this type reserves for missing
    assert not math.isnan(enc.decode(top))
    assert not rmap.entry(Role.COUNTER, "wip_parts").encoding.wraps  # a level, not a meter
    data["registers"][entry_index(data, "counter", name)]["scale"] = -0.5
    with pytest.raises(MapError, match=r"counter needs a positive scale \(a wrap must read as a step down\)"):
        map_from_mapping(data, spec, "my.yaml")
