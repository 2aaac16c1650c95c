"""The balanced design: balanced choice counts, evenly spread pairs of axes, distinct points, seeded."""

import itertools
from collections import Counter

import pytest

from ablate.space import Axis, load_space
from ablate.space.design import balanced_design, grid_design, pair_counts


def axes_of(*sizes):
    return tuple(Axis(f"axis{i}", tuple(f"c{j}" for j in range(k))) for i, k in enumerate(sizes))


SPACES = {
    "qlblock": load_space("qlblock").axes,  # 3 × 4 × 3
    "pflayer": load_space("pflayer").axes,  # 4 × 2
    "full": load_space("full").axes,  # 3 × 6 × 5
    "2x3x4": axes_of(2, 3, 4),
}


def space_size(axes):
    return len(grid_design(axes))


def choice_spread(design, axis):
    counts = Counter(p[axis.name] for p in design)
    return max(counts[c] for c in axis.choices) - min(counts[c] for c in axis.choices)


def pair_spread(design, first, second):
    counts = pair_counts(design, first, second).values()
    return max(counts) - min(counts)


def check_balanced(design, axes, n):
    assert len(design) == n
    assert len({tuple(p[a.name] for a in axes) for p in design}) == n  # distinct
    assert all(set(p) == {a.name for a in axes} and all(p[a.name] in a.choices for a in axes) for p in design)
    for axis in axes:
        assert choice_spread(design, axis) <= 1, (n, axis.name)
    for first, second in itertools.combinations(axes, 2):
        assert pair_spread(design, first, second) <= 1, (n, first.name, second.name)


@pytest.mark.parametrize("name", SPACES)
def test_counts_and_pairs_are_even_for_6_to_36(name):
    axes = SPACES[name]
    for n in range(6, min(36, space_size(axes)) + 1):
        check_balanced(balanced_design(axes, n, seed=n), axes, n)


@pytest.mark.parametrize("name,seeds",
                         [("qlblock", range(5)), ("pflayer", range(5)), ("full", range(3)), ("2x3x4", range(5))])
def test_every_size_up_to_the_whole_space_is_even(name, seeds):
    """Also past N = 36 and past half the space (there the design is the complement of an even one)."""
    axes = SPACES[name]
    for n in range(1, space_size(axes) + 1):
        for seed in seeds:
            check_balanced(balanced_design(axes, n, seed), axes, n)


def test_the_whole_space_is_the_grid():
    axes = SPACES["qlblock"]
    design = balanced_design(axes, 36, seed=3)
    assert sorted(map(str, design)) == sorted(map(str, grid_design(axes)))


def test_deterministic_per_seed():
    axes = SPACES["qlblock"]
    assert balanced_design(axes, 12, seed=4) == balanced_design(axes, 12, seed=4)
    assert balanced_design(axes, 12, seed=4) != balanced_design(axes, 12, seed=5)


def test_which_choices_get_the_extra_count_varies_with_the_seed():
    spatial = SPACES["qlblock"][1]  # 4 choices: with N = 13 one of them appears 4 times
    favoured = {Counter(p["spatial"] for p in balanced_design(SPACES["qlblock"], 13, seed)).most_common(1)[0][0]
                for seed in range(12)}
    assert len(favoured) > 1 and favoured <= set(spatial.choices)


def test_known_exception_five_binary_axes():
    """Five 2-choice axes cannot spread all ten pairs within 1 for N = 3, 4, 5 (an orthogonal-array bound, checked
    by enumerating every subset): the design is still distinct with balanced choices, and pairs within 2."""
    axes = axes_of(2, 2, 2, 2, 2)
    for n in (3, 4, 5):
        design = balanced_design(axes, n, seed=0)
        assert len({tuple(p.values()) for p in design}) == n
        assert all(choice_spread(design, a) <= 1 for a in axes)
        assert max(pair_spread(design, a, b) for a, b in itertools.combinations(axes, 2)) == 2
    check_balanced(balanced_design(axes, 8, seed=0), axes, 8)  # a 2^(5-2) fraction exists


def test_edge_cases():
    assert balanced_design(axes_of(7), 3, seed=1) and len(balanced_design(axes_of(7), 3)) == 3
    assert balanced_design((), 1) == [{}]
    assert balanced_design(axes_of(1, 3), 3, seed=0) == balanced_design(axes_of(1, 3), 3, seed=0)


@pytest.mark.parametrize("n", [0, -1, 37, 2.5, True])
def test_bad_n_raises(n):
    with pytest.raises(ValueError, match="between 1 and the space's 36 points"):
        balanced_design(SPACES["qlblock"], n)


def test_up_to_100_points_of_a_150_point_space_are_even():
    """Past the qlblock-sized spaces: a 5 × 6 × 5 space at the sizes a large search asks for (what once took
    seconds per design is checked for what it returns, not for its time)."""
    axes = axes_of(5, 6, 5)
    for n in (12, 36, 45, 60, 89, 100):
        check_balanced(balanced_design(axes, n, seed=1), axes, n)
