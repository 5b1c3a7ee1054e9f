"""What the README says about secrets outside compose: RabbitMQ's guest/guest and no Qdrant API key by
default, refused in production; the Qdrant server spoken to over plain HTTP unless TLS is asked for."""

import pytest

from dyimages_common.settings import QdrantSettings, RabbitSettings, SettingsError, load_settings
from testkit.compose import variable_names

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def no_settings_from_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in variable_names(RabbitSettings) | variable_names(QdrantSettings):
        monkeypatch.delenv(name, raising=False)


def test_outside_production_the_defaults_are_guest_guest_and_no_api_key() -> None:
    rabbit = load_settings(RabbitSettings)
    assert rabbit.environment == "development"
    assert (rabbit.rabbitmq_user, rabbit.rabbitmq_password.get_secret_value()) == ("guest", "guest")
    qdrant = load_settings(QdrantSettings)
    assert qdrant.qdrant_api_key is None
    assert (qdrant.qdrant_https, qdrant.qdrant_url) == (False, None)


def test_in_production_the_default_password_stops_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(SettingsError, match="RABBITMQ_PASSWORD is a placeholder"):
        load_settings(RabbitSettings)
