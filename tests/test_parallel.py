import os

import pytest

from analysis import parallel


@pytest.mark.parametrize("n, k, lengths", [(10, 3, [3, 3, 4]), (2, 5, [1, 1]), (0, 2, []), (7, 1, [7])])
def test_chunks_are_contiguous_near_equal_and_never_empty(n, k, lengths):
    parts = parallel.chunks(n, k)
    assert [len(p) for p in parts] == lengths
    assert [i for p in parts for i in p] == list(range(n))


def _double(xs, offset):
    return [2 * x + offset for x in xs]


def _pid(xs):
    return os.getpid()


def test_map_chunks_keeps_the_order_in_processes_and_in_this_one():
    items = list(range(9))
    assert parallel.map_chunks(_double, items, 3, 1) == [[1, 3, 5], [7, 9, 11], [13, 15, 17]]
    assert parallel.map_chunks(_double, items, 2, 1, size=4) == [[1, 3, 5, 7], [9, 11, 13, 15], [17]]
    assert parallel.map_chunks(_double, items, 1, 1) == [[2 * x + 1 for x in items]]
    assert parallel.map_chunks(_double, [], 2, 1) == [[]]


def test_map_chunks_runs_in_other_processes():
    pids = parallel.map_chunks(_pid, list(range(4)), 2)
    assert len(pids) == 2 and os.getpid() not in pids


def _fail(xs):
    if 5 in xs:
        raise ValueError("chunk with 5")
    return xs


def test_map_chunks_raises_a_chunks_error_here():
    with pytest.raises(ValueError, match="chunk with 5"):
        parallel.map_chunks(_fail, list(range(8)), 2)
