"""The suite hashes passwords with argon2's cheapest parameters (tests/conftest.py); these
tests check that Tidings itself uses the strong default and that the switch refuses nonsense."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters, profiles

from service.admin import auth


def test_the_default_profile_is_argon2id_with_64_mib_and_three_passes() -> None:
    auth.configure_password_hashing("default")
    try:
        params = extract_parameters(auth.hash_password("correct horse battery staple"))
    finally:
        auth.configure_password_hashing("insecure-fast-for-tests")
    assert params == profiles.RFC_9106_LOW_MEMORY
    assert (params.memory_cost, params.time_cost) == (65536, 3)


def test_a_cheap_hash_still_verifies_under_the_default_profile_and_a_wrong_password_does_not() -> None:
    cheap = auth.hash_password("correct horse battery staple")
    assert extract_parameters(cheap) == profiles.CHEAPEST
    auth.configure_password_hashing("default")
    try:
        assert auth.verify_password(cheap, "correct horse battery staple")
        assert not auth.verify_password(cheap, "correct horse battery stapler")
    finally:
        auth.configure_password_hashing("insecure-fast-for-tests")


def test_an_unknown_profile_is_refused_by_name_and_changes_nothing() -> None:
    before = extract_parameters(auth.hash_password("correct horse battery staple"))
    with pytest.raises(ValueError, match=r"expected one of default, insecure-fast-for-tests, got 'fast'"):
        auth.configure_password_hashing("fast")
    assert extract_parameters(auth.hash_password("correct horse battery staple")) == before
