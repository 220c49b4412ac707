"""Conditions as a player writes them: each name parsed to its test, wrong ones refused with
what is expected, and the voice row's list."""

import pytest

from rvaed.core.conditions import AB_MAX, CONDITIONS, parse


def test_every_name_parses_to_its_own_normal_form():
    assert [parse(name).name for name in CONDITIONS] == list(CONDITIONS)
    assert len(CONDITIONS) == 1 + 8 + sum(range(2, AB_MAX + 1))  # always, 4 tests x 2, A:B


@pytest.mark.parametrize(("text", "name", "test", "negate"), [
    ("ALWAYS", "always", "always", False), ("!Fill", "not fill", "fill", True),
    ("not  pre", "not pre", "pre", True), ("nei", "nei", "nei", False),
    ("3:7", "3:7", "ab", False), ("25%", "25%", "chance", False),
    ("12.5 %", "12.5%", "chance", False)])
def test_names_in_any_case_and_spacing(text, name, test, negate):
    condition = parse(text)
    assert (condition.name, condition.test, condition.negate) == (name, test, negate)


@pytest.mark.parametrize("text", ["sometimes", "0:2", "3:2", "1:9", "1:1", "101%", "not 1:2",
                                  "not always", "", 5, None])
def test_a_wrong_condition_says_what_is_expected(text):
    with pytest.raises(ValueError, match=r"^step 3: expected always, N% .*got"):
        parse(text, "step 3")


def test_a_b_holds_on_loop_a_of_every_b():
    one_of_three = parse("1:3")
    assert [one_of_three.holds(loop, False, False, False) for loop in range(7)] == [
        True, False, False, True, False, False, True]
    assert [parse("2:2").holds(loop, False, False, False) for loop in range(4)] == [
        False, True, False, True]
