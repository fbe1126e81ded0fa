from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from creatorpulse.settings import Secret, Settings, SettingsError
from creatorpulse.tokens import DEVELOPMENT_KEY, TokenVault, VaultError, key_id


def test_seal_and_open_round_trip_and_ciphertext_hides_the_token() -> None:
    vault = TokenVault([Fernet.generate_key().decode()])
    sealed = vault.seal(Secret("act.very-secret"))
    assert b"very-secret" not in sealed.ciphertext
    assert sealed.key_id == vault.key_id
    assert vault.open(sealed.ciphertext).reveal() == "act.very-secret"


def test_old_keys_open_the_first_key_seals_and_reseal_moves_to_it() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = TokenVault([old]).seal(Secret("tok"))
    vault = TokenVault([new, old])
    assert vault.open(before.ciphertext).reveal() == "tok"
    assert vault.key_id == key_id(new) != before.key_id
    resealed = vault.reseal(before.ciphertext)
    assert TokenVault([new]).open(resealed).reveal() == "tok"


def test_a_token_sealed_with_an_unknown_key_is_an_error_without_secrets() -> None:
    sealed = TokenVault([Fernet.generate_key().decode()]).seal(Secret("tok-123"))
    with pytest.raises(VaultError) as err:
        TokenVault([Fernet.generate_key().decode()]).open(sealed.ciphertext)
    assert "tok-123" not in str(err.value)
    assert "CREATORPULSE_TOKEN_KEYS" in str(err.value)


def test_key_id_is_a_fingerprint_not_the_key() -> None:
    key = Fernet.generate_key().decode()
    assert len(key_id(key)) == 12
    assert key_id(key) not in key


def test_development_uses_the_fixed_key_and_production_requires_the_setting() -> None:
    dev = TokenVault.from_settings(Settings.from_env({}, dotenv=None))
    assert dev.key_id == key_id(DEVELOPMENT_KEY)
    prod = Settings.from_env({"CREATORPULSE_ENV": "production"}, dotenv=None)
    with pytest.raises(VaultError, match="CREATORPULSE_TOKEN_KEYS"):
        TokenVault.from_settings(prod)


def test_the_setting_takes_several_keys_and_never_echoes_a_bad_one() -> None:
    a, b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = Settings.from_env({"CREATORPULSE_TOKEN_KEYS": f"{a}, {b}"}, dotenv=None)
    assert TokenVault.from_settings(settings).key_id == key_id(a)
    assert a not in repr(settings)
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"CREATORPULSE_TOKEN_KEYS": f"{a},not-a-key-secret"}, dotenv=None)
    assert "key 2" in str(err.value)
    assert "not-a-key-secret" not in str(err.value)
    assert a not in str(err.value)


def test_rate_limit_settings_are_parsed_per_platform() -> None:
    settings = Settings.from_env({}, dotenv=None)
    limit = settings.rate_limit("x", "app")
    assert (limit.requests, limit.period.total_seconds()) == (450, 900)
    with pytest.raises(SettingsError, match="no limit for"):
        Settings.from_env({"CREATORPULSE_APP_RATE_LIMITS": "x=1/1s"}, dotenv=None)
    with pytest.raises(SettingsError, match="unknown platform"):
        Settings.from_env({"CREATORPULSE_APP_RATE_LIMITS": "myspace=1/1s"}, dotenv=None)
