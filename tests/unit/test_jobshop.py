import json
import re

import numpy as np
import pytest

from envs.jobshop import (
    INSTANCES_DIR,
    Instance,
    InstanceError,
    ScheduleError,
    check_schedule,
    load_instance,
    mirror_schedule,
    parse_instance,
    reversed_instance,
    shipped,
)

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


OK = "2 3\n0 3 1 2 2 2\n0 2 2 1 1 4\n"
TAILLARD = "Nb of jobs, Nb of Machines\n 2 3\nTimes\n 3 2 5\n 2 1 4\nMachines\n{}\n 1 3 2\n"


def test_instance_file_with_labels_and_comments(tmp_path):
    """OR-Library's labels before the header and after the jobs, and `#` comments, are skipped."""
    rows = (INSTANCES_DIR / "ft06.txt").read_text().splitlines()
    rows[1] += "   # job 0"
    text = "instance ft06\n +++\n Fisher and Thompson 6x6 instance\n# a comment\n" + "\n".join(rows) + "\n +++\n"
    path = tmp_path / "ft06_orlib.txt"
    path.write_text(text)
    ft06 = load_instance("ft06")
    assert (load_instance(path).routes, load_instance(path).times) == (ft06.routes, ft06.times)


def test_a_comment_naming_times_and_machines_is_not_a_taillard_file(tmp_path):
    for comment in ("# Times in seconds; Machines numbered from 0", "Times and Machines as OR-Library pairs"):
        path = tmp_path / "pairs.txt"
        path.write_text(f"{comment}\n{OK}")
        loaded = load_instance(path)
        assert loaded.routes == ((0, 1, 2), (0, 2, 1))
        assert loaded.times == ((3, 2, 2), (2, 1, 4))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2 3\n0 3 1 2 2 2\n0 2 2 1\n", r"line 3: expected 6 numbers \(job 1's 3 machine-time pairs\), found 4"),
        ("2 3\n0 3 1 2 2\n0 2 2 1 1 4\n", r"line 2: expected 6 numbers \(job 0's 3 machine-time pairs\), found 5"),
        # a first job line one pair short holds as many numbers as a Taillard line: the next line tells
        ("2 2\n0 3\n1 4 0 5\n", r"line 2: expected 4 numbers \(job 0's 2 machine-time pairs\), found 2"),
        (
            "2 2\n0 4503599627370496 1 4503599627370496\n1 1 0 1\n",
            r"the processing times add up to 9007199254740994, above 9007199254740992 \(2\^53\)",
        ),
        ("3 3\n" + OK[4:], r"expected 3 lines of 3 machine-time pairs, one per job, found 2 before the end \(line 3\)"),
        ("2 3\n0 3 1 -2 2 2\n0 2 2 1 1 4\n", "line 2: expected whole numbers >= 0, found '-2'"),
        ("2 3\n0 3 1 2.5 2 2\n0 2 2 1 1 4\n", "line 2: expected whole numbers >= 0, found '2.5'"),
        ("2 3\n0 3 1 2 2 2\n0 2 2 1 1 x4\n", r"line 3: expected 6 numbers \(job 1's .*\), found '0 2 2 1 1 x4'"),
        (OK + "\n# a note: 12\n99\n", "line 6: expected no more numbers after the last job's line 3, found '99'"),
        (
            TAILLARD.format(" 1 2 3") * 2,  # Taillard's downloads hold ten instances a file
            r"line 10: expected no more numbers after the last job's line 8, found '2 3'; a file holds one instance: "
            r"split a file of several \(as Taillard's are\) into one each",
        ),
        (
            "2 3\n1 3 2 2 3 2\n1 2 3 1 2 4\n",
            r"line 2: job 0 names machine 3, outside 0..2 \(the OR-Library layout numbers machines from 0\)",
        ),
        ("2 3\n0 3 1 0 2 2\n0 2 2 1 1 4\n", "line 2: job 0 operation 1 takes time 0, expected > 0"),
        (
            TAILLARD.format(" 0 1 2"),
            r"line 7: job 0 names machine 0, outside 1..3 \(the Taillard layout numbers machines from 1\)",
        ),
        (TAILLARD.format(" 1 2"), r"line 7: expected 3 numbers \(job 0's machines\), found 2"),
        (TAILLARD.format(" 1 2 3").replace("3 2 5", "3 2"), r"line 4: expected 3 numbers \(job 0's processing times\)"),
        (
            TAILLARD.format(" 1 2 3").replace("Machines", "Machine order"),
            "line 6: expected 'Machines' after the 2 lines of times, found 'Machine order'",
        ),
        ("instance x\n2\n", r"line 2: expected the header 'jobs machines' \(two whole numbers >= 1\), found '2'"),
        ("abc\n", "no line of numbers"),
    ],
)
def test_a_malformed_instance_names_the_file_the_line_and_what_was_expected(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(InstanceError, match=f"^instance file '{re.escape(str(path))}'(, |: ){message}"):
        load_instance(path)
    with pytest.raises(InstanceError, match=f"^instance 'bad'(, |: ){message}"):
        parse_instance(text, "bad")


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [("utf-8", b"\xef\xbb\xbf"), ("utf-16", b""), ("latin-1", "# Maschinenfolge für ft06\n".encode("latin-1"))],
)
def test_an_instance_file_saved_by_another_editor_loads_as_the_plain_one(tmp_path, encoding, prefix):
    """A byte-order mark read as a label shifted the header onto job 0's line; UTF-16 raised UnicodeDecodeError."""
    path = tmp_path / "ft06_windows.txt"
    path.write_bytes(prefix + (INSTANCES_DIR / "ft06.txt").read_text().encode(encoding))
    loaded = load_instance(path)
    assert (loaded.routes, loaded.times, loaded.optimum) == (
        load_instance("ft06").routes,
        load_instance("ft06").times,
        55,
    )


def test_a_taillard_file_reads_its_machines_from_1(tmp_path):
    loaded = parse_instance(TAILLARD.format(" 1 2 3"), "t")
    assert loaded.routes == ((0, 1, 2), (0, 2, 1))
    assert loaded.times == ((3, 2, 5), (2, 1, 4))


def test_a_file_gets_published_bounds_only_with_a_shipped_instance_s_jobs(tmp_path):
    mine = tmp_path / "ft06.txt"  # a shipped name, other jobs
    mine.write_text(OK)
    loaded = load_instance(mine)
    assert (loaded.name, loaded.optimum, loaded.best_known) == ("ft06", None, None)
    with pytest.raises(InstanceError, match="no best known makespan"):
        loaded.gap(10)
    copy = tmp_path / "my_ta01.txt"  # ta01's jobs in Taillard's layout, under another name
    copy.write_text(taillard_text("ta01"))
    loaded = load_instance(copy)
    assert (loaded.name, loaded.optimum, loaded.best_known) == ("my_ta01", 1231, 1231)
    open_one = load_instance(INSTANCES_DIR / "ta18.txt")  # a shipped file by path: open, its best known schedule
    assert (open_one.optimum, open_one.best_known) == (None, 1396)


def test_every_shipped_file_loads_by_path_as_by_name():
    for name in shipped():
        assert load_instance(INSTANCES_DIR / f"{name}.txt") == load_instance(name)


def test_unknown_instance_is_named():
    with pytest.raises(InstanceError, match="instance 'ft07'"):
        load_instance("ft07")


def random_semi_active(instance: Instance, rng: np.random.Generator) -> np.ndarray:
    """A schedule that dispatches a random open job's next operation as early as it can, one at a time."""
    width = max(len(r) for r in instance.routes)
    starts = np.zeros((instance.n_jobs, width), dtype=np.int64)
    next_op, job_ready, machine_ready = [0] * instance.n_jobs, [0] * instance.n_jobs, [0] * instance.n_machines
    while open_jobs := [j for j in range(instance.n_jobs) if next_op[j] < len(instance.routes[j])]:
        j = int(rng.choice(open_jobs))
        k, machine = next_op[j], instance.routes[j][next_op[j]]
        starts[j, k] = max(job_ready[j], machine_ready[machine])
        job_ready[j] = machine_ready[machine] = int(starts[j, k]) + instance.times[j][k]
        next_op[j] += 1
    return starts


def random_instance(rng: np.random.Generator, jobs: int, machines: int, ragged: bool) -> Instance:
    routes, times = [], []
    for _ in range(jobs):
        length = int(rng.integers(1, machines + 1)) if ragged else machines
        routes.append(tuple(int(m) for m in rng.permutation(machines)[:length]))
        times.append(tuple(int(t) for t in rng.integers(1, 20, size=length)))
    return Instance("random", machines, tuple(routes), tuple(times))


def test_reversing_an_instance_reads_every_route_backwards():
    ta01 = load_instance("ta01")
    backwards = reversed_instance(ta01)
    assert backwards.routes[0] == ta01.routes[0][::-1]
    assert backwards.times[3] == ta01.times[3][::-1]
    assert (backwards.n_machines, backwards.best_known) == (ta01.n_machines, ta01.best_known)
    again = reversed_instance(backwards)
    assert (again.routes, again.times) == (ta01.routes, ta01.times)


def test_a_mirrored_schedule_by_hand():
    # job 0: machine 0 for 3, then machine 1 for 2; job 1: machine 1 for 4, then machine 0 for 1
    shop = Instance("two", 2, ((0, 1), (1, 0)), ((3, 2), (4, 1)))
    # reversed: job 0 is machine 1 (2) then machine 0 (3); job 1 is machine 0 (1) then machine 1 (4).
    # Job 1 first on machine 0 [0, 1); job 0 on machine 1 [0, 2), then machine 0 [2, 5); job 1 on
    # machine 1 [2, 6): makespan 6.
    backward = np.array([[0, 2], [0, 2]])
    assert check_schedule(reversed_instance(shop), backward) == 6
    # Mirrored: job 1 on machine 1 [0, 4), machine 0 [5, 6); job 0 on machine 0 [1, 4), machine 1
    # [4, 6); shifted left, job 0's first operation starts at 0 and job 1's second at 4.
    starts = mirror_schedule(shop, backward)
    np.testing.assert_array_equal(starts, [[0, 4], [0, 4]])
    assert check_schedule(shop, starts) == 6


@pytest.mark.parametrize("ragged", [False, True], ids=["square", "jobs of different lengths"])
def test_a_mirrored_schedule_keeps_the_sequences_and_never_gets_longer(ragged):
    rng = np.random.default_rng(7)
    for _ in range(40):
        shop = random_instance(rng, int(rng.integers(2, 7)), int(rng.integers(2, 6)), ragged)
        backward = random_semi_active(reversed_instance(shop), rng)
        starts = mirror_schedule(shop, backward)
        assert check_schedule(shop, starts) <= check_schedule(reversed_instance(shop), backward)
        ends = {}
        for j, (route, times) in enumerate(zip(shop.routes, shop.times, strict=True)):
            for k, (machine, t) in enumerate(zip(route, times, strict=True)):
                ends[j, k] = (machine, starts[j, k], starts[j, k] + t)
        for (j, k), (machine, start, _) in ends.items():
            # the same order on each machine, reversed: the mirror keeps every sequence
            for (j1, k1), (m1, s1, _) in ends.items():
                if m1 == machine and (j1, k1) != (j, k):
                    n, n1 = len(shop.routes[j]), len(shop.routes[j1])
                    assert (start < s1) == (backward[j, n - 1 - k] > backward[j1, n1 - 1 - k1])
            # shifted left: each operation starts at 0 or where its job's or its machine's previous one ends
            before = {end for (j1, k1), (m1, _, end) in ends.items() if (j1 == j and k1 == k - 1) or m1 == machine}
            assert start == 0 or start in before


def test_a_mirror_of_no_schedule_is_refused():
    shop = Instance("two", 2, ((0, 1), (1, 0)), ((3, 2), (4, 1)))
    with pytest.raises(ScheduleError, match=r"'two \(reversed\)': job 1 operation 1"):
        mirror_schedule(shop, np.array([[0, 2], [0, 0]]))
