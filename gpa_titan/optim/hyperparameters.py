"""The allowed range of every optimizer hyperparameter, written once.

The optimizers call these checks for every param group; the TorchTitan layer calls the
same checks on the TOML values and re-raises ``HyperparameterError`` with the TOML key
(``[optimizer] beta1 = 0.0 ...``), so a range lives here and nowhere else.
"""

from __future__ import annotations

import math
from numbers import Real


class HyperparameterError(ValueError):
    """An optimizer argument outside its allowed range.

    Args:
        argument (str): the argument's name as the optimizer takes it (``"betas[0]"``).
        value: the rejected value.
        requirement (str): what the value must be, completing "it must be ...".
    """

    def __init__(self, argument: str, value, requirement: str) -> None:
        self.argument, self.value, self.requirement = argument, value, requirement
        super().__init__(f"{argument}={value!r} is out of range: it must be {requirement}")


def check_number(
    argument: str,
    value,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    note: str = "",
) -> None:
    """Raise ``HyperparameterError`` unless ``value`` is a real number in the interval."""
    lb, hb = "[" if low_inclusive else "(", "]" if high_inclusive else ")"
    requirement = f"a number in {lb}{low:g}, {high:g}{hb}" + (f" ({note})" if note else "")
    if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(value):
        raise HyperparameterError(argument, value, requirement)
    ok = (value >= low if low_inclusive else value > low) and (value <= high if high_inclusive else value < high)
    if not ok:
        raise HyperparameterError(argument, value, requirement)


def check_integer(argument: str, value, low: int) -> None:
    """Raise ``HyperparameterError`` unless ``value`` is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise HyperparameterError(argument, value, f"an integer >= {low}")


def check_adamw(lr, betas, eps, weight_decay) -> None:
    """AdamW's hyperparameters (shared by every optimizer here, torch's AdamW included)."""
    check_number("lr", lr, 0.0, math.inf, high_inclusive=False)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise HyperparameterError("betas", betas, "a pair (beta1, beta2)")
    check_number("betas[0]", betas[0], 0.0, 1.0, high_inclusive=False)
    check_number("betas[1]", betas[1], 0.0, 1.0, high_inclusive=False)
    check_number("eps", eps, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
    check_number("weight_decay", weight_decay, 0.0, math.inf, high_inclusive=False)


def check_averaging(mu_x, mu_y) -> None:
    """GPA's averaging rates (any base): mu_x in [0, 1), mu_y in (0, 1]."""
    check_number("mu_x", mu_x, 0.0, 1.0, high_inclusive=False)
    check_number("mu_y", mu_y, 0.0, 1.0)
    if mu_y == 0.0:
        raise HyperparameterError(
            "mu_y", mu_y, "in (0, 1]: mu_y=0 is not supported, since GPA stores y and z and recovers "
            "x = y/mu_y + (1 - 1/mu_y) z",
        )


def check_implementation(implementation, allowed: tuple[str, ...] = ("fused", "foreach", "for-loop")) -> None:
    if implementation not in allowed:
        raise HyperparameterError("implementation", implementation, f"one of {list(allowed)}")
