"""Condition operators (connect-flows.md §1.1) and first-match selection.

Every operator takes the action's result (a string) and one string operand. Text operators
are case-sensitive; number operators parse both sides as decimals and are false when either
side is not a finite number (so a non-numeric attribute falls through to NoMatchingCondition).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation

from callstream.flows.model import ConditionBranch

__all__ = ["OPERATOR_FUNCTIONS", "first_match", "matches", "to_number"]


def to_number(text: str) -> Decimal | None:
    """``text`` as a finite Decimal, or None."""
    try:
        number = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _numeric(test: Callable[[Decimal, Decimal], bool]) -> Callable[[str, str], bool]:
    def op(value: str, operand: str) -> bool:
        a, b = to_number(value), to_number(operand)
        return a is not None and b is not None and test(a, b)

    return op


OPERATOR_FUNCTIONS: Mapping[str, Callable[[str, str], bool]] = {
    "Equals": lambda value, operand: value == operand,
    "TextStartsWith": lambda value, operand: value.startswith(operand),
    "TextEndsWith": lambda value, operand: value.endswith(operand),
    "TextContains": lambda value, operand: operand in value,
    "NumberGreaterThan": _numeric(lambda a, b: a > b),
    "NumberGreaterOrEqualTo": _numeric(lambda a, b: a >= b),
    "NumberLessThan": _numeric(lambda a, b: a < b),
    "NumberLessOrEqualTo": _numeric(lambda a, b: a <= b),
}
"""Operator name -> test(value, operand); the keys are exactly the §1.1 operators."""


def matches(operator: str, value: str, operand: str) -> bool:
    """Apply one operator; unknown operators raise KeyError (the loader rejects them)."""
    return OPERATOR_FUNCTIONS[operator](value, operand)


def first_match(
    branches: Iterable[ConditionBranch],
    value: str,
    operand_of: Callable[[str], str] = lambda text: text,
) -> ConditionBranch | None:
    """The first branch whose condition holds for ``value`` (Conditions are ordered).

    ``operand_of`` renders an operand first (operands may reference contact data).
    """
    for branch in branches:
        cond = branch.condition
        if cond.operands and matches(cond.operator, value, operand_of(cond.operands[0])):
            return branch
    return None
