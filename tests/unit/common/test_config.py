"""Settings fail at start, naming the variable, and take secrets only by reference."""

from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from longhaul.config import KitSettings, SettingsError, load_settings
from tests.support.echo.spec import SPEC as ECHO


class MediaSettings(KitSettings):
    """A service's own settings on top of the kit's."""

    model_config = SettingsConfigDict(env_prefix="MEDIA_")
    max_upload_bytes: int = 10


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("LONGHAUL_BUS_NAME", "LONGHAUL_QUEUE_NAME", "LONGHAUL_AUTH_ISSUER"):
        monkeypatch.delenv(key, raising=False)


def test_missing_required_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="LONGHAUL_BUS_NAME: Field required"):
        load_settings(MediaSettings)


def test_invalid_service_variable_is_named_with_its_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LONGHAUL_BUS_NAME", "bus")
    monkeypatch.setenv("MEDIA_MAX_UPLOAD_BYTES", "ten")
    with pytest.raises(
        SettingsError, match="MEDIA_MAX_UPLOAD_BYTES: Input should be a valid integer"
    ):
        load_settings(MediaSettings)


def test_service_prefix_does_not_rename_the_shared_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LONGHAUL_BUS_NAME", "bus")
    monkeypatch.setenv("MEDIA_MAX_UPLOAD_BYTES", "99")
    settings = load_settings(MediaSettings)
    assert (settings.bus_name, settings.max_upload_bytes) == ("bus", 99)


@pytest.mark.parametrize("value", ["changeme", "TODO", "<your-bus>", "${BUS}"])
def test_placeholder_values_fail_at_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LONGHAUL_BUS_NAME", value)
    with pytest.raises(SettingsError, match=r"LONGHAUL_BUS_NAME: Value error, .* is a placeholder"):
        load_settings(MediaSettings)


def test_spec_and_role_name_every_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LONGHAUL_BUS_NAME", "bus")
    settings = load_settings(KitSettings)
    with pytest.raises(SettingsError) as raised:
        settings.check_against(ECHO, "api")
    for name in (
        "LONGHAUL_QUEUE_NAME",
        "LONGHAUL_TABLE_NAME",
        "LONGHAUL_BUCKET_NAME",
        "LONGHAUL_SECRET_IDS[api-key]",
        "LONGHAUL_AUTH_ISSUER",
        "LONGHAUL_AUTH_CLIENT_ID",
    ):
        assert name in str(raised.value)
    # The worker role does not verify tokens, so it needs no issuer.
    with pytest.raises(SettingsError) as worker:
        settings.check_against(ECHO, "worker")
    assert "LONGHAUL_AUTH_ISSUER" not in str(worker.value)


def test_secret_ids_must_be_a_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LONGHAUL_BUS_NAME", "bus")
    monkeypatch.setenv("LONGHAUL_SECRET_IDS", "api-key=plain-value")
    with pytest.raises(SettingsError, match="LONGHAUL_SECRET_IDS"):
        load_settings(KitSettings)


def test_jwks_url_defaults_to_the_issuers_well_known_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LONGHAUL_BUS_NAME", "bus")
    monkeypatch.setenv("LONGHAUL_AUTH_ISSUER", "https://cognito-idp.eu-west-1.amazonaws.com/pool/")
    settings = load_settings(KitSettings)
    assert (
        settings.jwks_url
        == "https://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json"
    )
