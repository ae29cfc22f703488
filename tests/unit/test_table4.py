"""Table 4 of the paper: DiLoCo's (H, mu) as GPA's mu_x, and its inverse."""

import pytest

from gpa_titan.optim.table4 import diloco_to_gpa, effective_inner_steps


def test_table_4_conversion_matches_the_paper():
    paper = {1: 0.9, 4: 0.974, 8: 0.9869, 16: 0.9934, 32: 0.9967, 64: 0.9984, 128: 0.9992}
    for h, mu_x in paper.items():
        assert round(diloco_to_gpa(h, 0.9)[0], 4) == mu_x
    with pytest.raises(ValueError):
        diloco_to_gpa(0, 0.9)


@pytest.mark.parametrize("h", [1, 4, 8, 32, 128])
def test_effective_inner_steps_inverts_the_mapping(h):
    mu_x, _ = diloco_to_gpa(h, 0.9)
    assert effective_inner_steps(mu_x, 0.9) == pytest.approx(h, rel=1e-9)
    assert effective_inner_steps(0.0) is None
    with pytest.raises(ValueError, match="mu_x"):
        effective_inner_steps(1.0)
