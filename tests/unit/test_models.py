"""Flavor sizes are what their names and the README say."""

import pytest

from gpa_titan.titan.models import parameter_counts as counts


@pytest.mark.parametrize(
    "flavor,total,non_embedding",
    [("160M", 162.4e6, 113.3e6), ("1B", 1498.5e6, 973.1e6), ("8B", 8030.3e6, 6979.6e6)],
)
def test_flavor_parameter_counts(flavor, total, non_embedding):
    c = counts(flavor)
    assert abs(c["total"] - total) < 0.1e6
    assert abs(c["non_embedding"] - non_embedding) < 0.1e6


def test_8b_is_llama3_8b_and_1b_is_llama32_1b_shaped():
    c8, c1 = counts("8B"), counts("1B")
    assert (c8["layers"], c8["dim"], c8["heads"], c8["kv_heads"], c8["ffn"], c8["vocab"]) == (
        32,
        4096,
        32,
        8,
        14336,
        128256,
    )
    assert (c1["layers"], c1["dim"], c1["heads"], c1["kv_heads"], c1["ffn"], c1["vocab"]) == (
        16,
        2048,
        32,
        8,
        8192,
        128256,
    )
