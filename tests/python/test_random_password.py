"""GetRandomPassword (spec §4.14)."""

import string

import pytest

from helpers import assert_raw_error, body_keys, expect_error, raw_post

PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
CLASSES = {
    "ExcludeUppercase": set(string.ascii_uppercase),
    "ExcludeLowercase": set(string.ascii_lowercase),
    "ExcludeNumbers": set(string.digits),
    "ExcludePunctuation": set(PUNCTUATION),
}
ALL_CHARACTERS = set().union(*CLASSES.values())


def test_punctuation_is_the_32_ascii_marks():
    assert len(PUNCTUATION) == 32 and set(PUNCTUATION) == set(string.punctuation)


def test_default_password_is_32_characters_with_every_type_and_no_space(sm):
    for _ in range(20):
        password = sm.get_random_password()["RandomPassword"]
        assert len(password) == 32
        assert set(password) <= ALL_CHARACTERS
        for chars in CLASSES.values():
            assert set(password) & chars, password
        assert " " not in password


def test_get_random_password_answers_with_the_password_only(sm):
    assert body_keys(sm.get_random_password()) == {"RandomPassword"}


def test_length_and_excluded_characters_are_respected(sm):
    excluded = "xyzDje@?!."
    password = sm.get_random_password(PasswordLength=120, ExcludeCharacters=excluded)["RandomPassword"]
    assert len(password) == 120
    assert not set(password) & set(excluded)


@pytest.mark.parametrize("switch", sorted(CLASSES))
def test_each_exclude_switch_removes_its_character_type(sm, switch):
    for _ in range(5):
        password = sm.get_random_password(PasswordLength=64, **{switch: True})["RandomPassword"]
        assert len(password) == 64
        assert not set(password) & CLASSES[switch], password
        for other, chars in CLASSES.items():
            if other != switch:
                assert set(password) & chars, (other, password)


def test_only_digits_when_every_other_type_is_excluded(sm):
    password = sm.get_random_password(
        PasswordLength=50, ExcludeUppercase=True, ExcludeLowercase=True, ExcludePunctuation=True
    )["RandomPassword"]
    assert len(password) == 50 and set(password) <= set(string.digits)


def test_include_space_puts_a_space_in_the_password(sm):
    for _ in range(5):
        password = sm.get_random_password(PasswordLength=20, IncludeSpace=True)["RandomPassword"]
        assert " " in password


def test_without_require_each_included_type_a_one_character_password_is_possible(sm):
    password = sm.get_random_password(PasswordLength=1, RequireEachIncludedType=False)["RandomPassword"]
    assert len(password) == 1 and password in ALL_CHARACTERS


def test_length_too_short_for_the_required_types_is_refused(sm):
    # [E] moto's wording.
    expect_error(
        sm.get_random_password,
        "InvalidParameterException",
        "Password length is too short based on the required types.",
        PasswordLength=3,
    )


def test_excluding_every_type_is_refused(sm):
    # [E] wording of the server (kms/src/password.rs); AWS's text is not recorded.
    expect_error(
        sm.get_random_password,
        "InvalidParameterException",
        "The password must contain at least one character type, but every type is excluded.",
        ExcludeUppercase=True,
        ExcludeLowercase=True,
        ExcludeNumbers=True,
        ExcludePunctuation=True,
    )


def test_excluding_every_character_of_the_remaining_types_is_refused(sm):
    expect_error(
        sm.get_random_password,
        "InvalidParameterException",
        "The password must contain at least one character type, but every type is excluded.",
        ExcludeUppercase=True,
        ExcludeLowercase=True,
        ExcludePunctuation=True,
        ExcludeCharacters=string.digits,
    )


def test_the_longest_password_has_4096_characters(sm):
    password = sm.get_random_password(PasswordLength=4096)["RandomPassword"]
    assert len(password) == 4096


def test_length_above_4096_gets_validation_error(sm):
    expect_error(
        sm.get_random_password,
        "ValidationException",
        "1 validation error detected: Value '4097' at 'passwordLength' failed to satisfy constraint: "
        "Member must have value less than or equal to 4096",
        PasswordLength=4097,
    )


def test_length_zero_gets_validation_error(server):
    assert_raw_error(
        raw_post(server, "GetRandomPassword", {"PasswordLength": 0}),
        "ValidationException",
        "1 validation error detected: Value '0' at 'passwordLength' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1",
    )


def test_passwords_do_not_repeat(sm):
    passwords = {sm.get_random_password()["RandomPassword"] for _ in range(50)}
    assert len(passwords) == 50


def test_characters_are_spread_over_the_whole_alphabet(sm):
    seen = set()
    for _ in range(20):
        seen |= set(sm.get_random_password(PasswordLength=200)["RandomPassword"])
    assert seen == ALL_CHARACTERS
