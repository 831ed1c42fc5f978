import json

import pytest

from envs.jobshop import INSTANCES_DIR, InstanceError, load_instance, parse_instance, shipped

PUBLISHED = {"ft06": 55, "ft10": 930, "ft20": 1165, "la01": 666, "ta01": 1231, "ta10": 1241}
SIZES = {"ft06": (6, 6), "ft10": (10, 10), "ft20": (20, 5), "la01": (10, 5), "ta01": (15, 15)}


def test_every_listed_instance_ships_with_its_best_known_makespan():
    names = set(shipped())
    expected = {"ft06", "ft10", "ft20"} | {f"la0{i}" for i in range(1, 6)} | {f"ta{i:02d}" for i in range(1, 21)}
    assert names == expected
    for name in names:
        instance = load_instance(name)
        assert instance.best_known is not None
        assert instance.optimum in (None, instance.best_known)
        assert instance.best_known >= max(sum(t) for t in instance.times)  # a job alone is a lower bound
    open_instance = load_instance("ta18")  # open: lower bound 1377, best known schedule 1396
    assert open_instance.optimum is None
    assert open_instance.best_known == 1396
    assert open_instance.gap(1466) == pytest.approx(70 / 1396)
    assert (open_instance.n_jobs, open_instance.n_machines) == (20, 15)
    for name, optimum in PUBLISHED.items():
        assert load_instance(name).optimum == optimum
    for name, (jobs, machines) in SIZES.items():
        instance = load_instance(name)
        assert (instance.n_jobs, instance.n_machines) == (jobs, machines)


def test_optima_file_agrees_with_the_instance_files():
    data = json.loads((INSTANCES_DIR / "optima.json").read_text())
    for name, entry in data.items():
        instance = load_instance(name)
        assert (instance.n_jobs, instance.n_machines) == (entry["jobs"], entry["machines"])


def taillard_text(name: str) -> str:
    inst = load_instance(name)
    lines = ["Nb of jobs, Nb of Machines, Time seed, Machine seed, Upper bound, Lower bound"]
    lines.append(f"  {inst.n_jobs} {inst.n_machines} 1 2 {inst.optimum} {inst.optimum}")
    lines.append("Times")
    lines += [" ".join(map(str, t)) for t in inst.times]
    lines.append("Machines")
    lines += [" ".join(str(k + 1) for k in r) for r in inst.routes]
    return "\n".join(lines)


@pytest.mark.parametrize("name", ["ft06", "ta01"])
def test_taillard_layout_reads_the_same_instance(name):
    ours = load_instance(name)
    sections = parse_instance(taillard_text(name), name)
    bare = parse_instance(
        "\n".join(line for line in taillard_text(name).splitlines()[1:] if line[0].isspace() or line[0].isdigit()), name
    )
    for parsed in (sections, bare):
        assert parsed.routes == ours.routes
        assert parsed.times == ours.times


def test_instance_file_with_a_comment_header(tmp_path):
    text = "instance ft06\n +++\n Fisher and Thompson 6x6 instance\n" + (INSTANCES_DIR / "ft06.txt").read_text()
    path = tmp_path / "ft06_orlib.txt"
    path.write_text(text)
    assert load_instance(path).routes == load_instance("ft06").routes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2 2\n0 5 1 3\n1 4\n", "expected 2 lines of 4 numbers"),
        ("2 2\n0 5 2 3\n1 4 0 2\n", "job 0 names a machine outside 0..1"),
        ("2 2\n0 5 1 0\n1 4 0 2\n", "job 0 has a processing time <= 0"),
        ("abc\n", "first numeric line"),
    ],
)
def test_malformed_instances_are_refused(text, message):
    with pytest.raises(InstanceError, match=message):
        parse_instance(text, "bad")


def test_unknown_instance_is_named():
    with pytest.raises(InstanceError, match="instance 'ft07'"):
        load_instance("ft07")
