"""A bad line definition fails at load, naming the file and the field."""

import copy
import re

import gymnasium as gym
import pytest
import yaml

import envs  # noqa: F401  (registers the ids)
from configs import CONFIG_DIR, config_file
from hardware.twin import LineDefinitionError, TwinLine
from tests.lines import edited

NAN, INF = float("nan"), float("inf")
PRICE_SPIKE = {"kind": "price_spike", "start_s": 0.0, "duration_s": 3600.0, "factor": 5.0}
SURGE = {"kind": "demand_surge", "start_s": 0.0, "duration_s": 3600.0, "factor": 2.0}
OUTAGE = {"kind": "supplier_outage", "start_s": 0.0, "duration_s": 3600.0}


@pytest.mark.parametrize(
    ("path", "value", "field", "problem"),
    [
        ("stations.1.bufer_capacity", 5, r"stations\[1\]\.bufer_capacity", "unknown field"),
        ("variants.0.processing_time_s", [52, -1, 45, 40, 50], r"variants\[0\]\.processing_time_s\[1\]", "> 0"),
        ("stations.2.buffer_capacity_parts", 0, r"stations\[2\]\.buffer_capacity_parts", ">= 1"),
        ("variants.1.route", ["cut", "press", "weld", "polish", "assemble"], r"variants\[1\]\.route\[3\]", "polish"),
        ("machines.cnc.repair_time_mean_s", -60.0, r"machines\.cnc\.repair_time_mean_s", ">= 0"),
        ("stations.0.machine", "laser", r"stations\[0\]\.machine", "laser"),
        ("changeover_time_s.2", [1, 2], r"changeover_time_s\[2\]", "3 columns"),
        ("demand.arrival_rate_per_h", "fast", r"demand\.arrival_rate_per_h", "number"),
        ("layout", "circle", "layout", "flow, jobshop"),
        ("scenarios", [{"kind": "alien_attack", "start_s": 0, "duration_s": 1}], r"scenarios\[0\]\.kind", "alien"),
        ("control.levers", ["speed"], r"control\.control_period_s", "control period"),
        ("supply.max_order_units", 0.0, r"supply\.max_order_units", "> 0"),
        ("machines.robot.warmup_from_standby_s", 400.0, r"machines\.robot\.warmup_from_standby_s", "must not exceed"),
        # not finite: a NaN ended in a sensor range's raw ValueError, an infinity loaded and ran
        ("machines.cnc.sensors.temperature_ambient_c", NAN, r"machines\.cnc\.sensors\.temperature_ambient_c", "nan"),
        ("machines.cnc.sensors.temperature_ambient_c", INF, r"sensors\.temperature_ambient_c", "must be a finite"),
        ("machines.press.sensors.range_headroom", INF, r"machines\.press\.sensors\.range_headroom", "finite"),
        ("grid.spike_factor", INF, r"grid\.spike_factor", "must be >= 1 and finite, got inf"),
        ("grid.price_range_factor", NAN, r"grid\.price_range_factor", "must be >= 1 and finite, got nan"),
        ("grid.carbon_kg_per_kwh", [INF], r"grid\.carbon_kg_per_kwh\[0\]", "must be >= 0 and finite, got inf"),
        # a setting the kind of event would ignore
        ("scenarios", [{**PRICE_SPIKE, "stations": ["press"]}], r"scenarios\[0\]\.stations", "a price_spike acts on"),
        ("scenarios", [{**SURGE, "stations": ["cut"]}], r"scenarios\[0\]\.stations", "only a breakdown_wave"),
        ("scenarios", [{**OUTAGE, "factor": 0.5}], r"scenarios\[0\]\.factor", "takes no factor: got 0.5"),
        ("demand.arrival_rate_per_h", 0.0, r"scenarios\[0\]\.kind", "a demand_surge scales open arrivals"),
    ],
)
def test_bad_definition_names_file_and_field(tmp_path, flow5_definition, path, value, field, problem):
    bad = edited(flow5_definition, path, value)
    if path == "control.levers":
        bad["control"].pop("control_period_s")
    if path == "demand.arrival_rate_per_h" and value == 0.0:
        bad["scenarios"] = [SURGE]
    file = tmp_path / "bad_line.yaml"
    file.write_text(yaml.safe_dump(bad))
    with pytest.raises(LineDefinitionError) as err:
        TwinLine.from_yaml(file)
    message = str(err.value)
    assert message.startswith(str(file))
    assert re.search(field, message), message
    assert problem in message


def test_missing_required_field(tmp_path, flow5_definition):
    bad = dict(flow5_definition)
    del bad["stations"]
    file = tmp_path / "no_stations.yaml"
    file.write_text(yaml.safe_dump(bad))
    with pytest.raises(LineDefinitionError, match=r"no_stations\.yaml: stations: required field is missing"):
        TwinLine.from_yaml(file)


def test_unquoted_off_key_gets_a_hint(tmp_path):
    file = tmp_path / "off.yaml"
    file.write_text(
        "name: x\nlayout: flow\nmachines: {m: {power_kw: {off: 0.0}}}\n"
        "stations: [{name: s, machine: m}]\nvariants: [{name: A, processing_time_s: [10]}]\n"
    )
    with pytest.raises(LineDefinitionError, match="quote the key"):
        TwinLine.from_yaml(file)


def test_job_shop_rejects_finite_buffers_and_missing_routes():
    base = {
        "name": "js",
        "layout": "jobshop",
        "machines": {"m": {}},
        "stations": [{"name": "a", "machine": "m", "buffer_capacity_parts": 3}, {"name": "b", "machine": "m"}],
        "variants": [{"name": "A", "route": ["a", "b"], "processing_time_s": [1, 2]}],
    }
    with pytest.raises(LineDefinitionError, match=r"stations\[0\]\.buffer_capacity_parts: a job shop"):
        TwinLine.from_config(**base)
    base["stations"][0].pop("buffer_capacity_parts")
    base["variants"][0].pop("route")
    with pytest.raises(LineDefinitionError, match=r"variants\[0\]\.route: is required in a job shop"):
        TwinLine.from_config(**base)


def test_unreadable_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(LineDefinitionError, match=r"nope\.yaml: cannot read"):
        TwinLine.from_yaml(missing)


@pytest.mark.parametrize("name", ["op.10", "line"])
def test_a_station_name_that_cannot_prefix_its_signals_is_refused(tmp_path, flow5_definition, name):
    file = tmp_path / "named.yaml"
    file.write_text(yaml.safe_dump(edited(flow5_definition, "stations.0.name", name)))
    with pytest.raises(
        LineDefinitionError, match=rf"stations\[0\]\.name: must contain no '\.' and not be 'line'.*{name!r}"
    ):
        TwinLine.from_yaml(file)


def test_a_users_line_file_builds_on_a_shipped_line_from_anywhere(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("defaults: [flow5_busy]\nname: mine\ndemand: {arrival_rate_per_h: 20.0}\n")
    shipped = [CONFIG_DIR / "line"]
    mine, busy = TwinLine.from_yaml(own, search=shipped), TwinLine.from_yaml(config_file("line", "flow5_busy"))
    assert (mine.spec.name, mine.spec.stations) == ("mine", busy.spec.stations)
    assert mine.params.demand.arrival_rate_per_h == 20.0 != busy.params.demand.arrival_rate_per_h
    env = gym.make("smartline/Speed-v0", line=str(own))  # envs.lines searches the shipped lines
    assert env.unwrapped.line.spec.stations == busy.spec.stations
    with pytest.raises(LineDefinitionError, match=r"flow5_busy\.yaml: cannot read"):
        TwinLine.from_yaml(own)  # the twin itself knows no shipped folder
    (tmp_path / "flow5_busy.yaml").write_text("name: sibling\nlayout: flow\nmachines: {m: {}}\n"
                                               "stations: [{name: s, machine: m}]\n"
                                               "variants: [{name: A, processing_time_s: [10]}]\n")  # fmt: skip
    assert TwinLine.from_yaml(own, search=shipped).spec.stations == ("s",)  # a sibling of that name comes first


def test_a_bad_scenario_event_given_to_an_env_is_named_as_given_not_after_the_line_file():
    """It read `.../flow5.yaml: scenarios[0].kind: ...`: a field the file does not hold."""
    line = config_file("line", "flow5")
    with pytest.raises(
        LineDefinitionError,
        match=r"^scenario\[1\]\.kind: must be one of supplier_outage, demand_surge, price_spike, breakdown_wave, "
        rf"got 'bogus' \(given to the env, over {re.escape(str(line))}\)$",
    ):
        gym.make(
            "smartline/Speed-v0",
            scenario=[{"kind": "price_spike", "start_s": 0.0, "duration_s": 60.0, "factor": 2.0}, {"kind": "bogus"}],
        )
    with pytest.raises(LineDefinitionError, match=r"^line config 'flow5': stations"):  # its own fields: the line
        gym.make("smartline/Speed-v0", line={**yaml.safe_load(line.read_text()), "stations": []}, scenario=[])


def test_orders_that_arrive_need_a_variant_with_a_share(tmp_path, flow5_definition):
    """Every mix 0 loaded, then crashed in the first order's draw: `generator raised StopIteration`."""
    bad = copy.deepcopy(flow5_definition)
    for variant in bad["variants"]:
        variant["mix"] = 0.0
    file = tmp_path / "zero_mix.yaml"
    file.write_text(yaml.safe_dump(bad))
    with pytest.raises(LineDefinitionError, match=r"zero_mix\.yaml'?: variants: every mix is 0, so the orders"):
        TwinLine.from_yaml(file)
    bad["demand"]["arrival_rate_per_h"] = 0.0  # no orders arrive: no share needed
    bad["demand"]["jobs"] = [{"variant": "A"}]
    line = TwinLine.from_config(seed=0, **{k: v for k, v in bad.items() if not k.startswith("_")})
    assert line.reset().time == 0.0
