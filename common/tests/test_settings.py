import pytest

from dyimages_common.settings import (
    QdrantSettings,
    RabbitSettings,
    SettingsError,
    load_settings,
    parse_networks,
    settings_or_exit,
)

pytestmark = pytest.mark.unit


def test_defaults_fit_the_compose_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RABBITMQ_HOST", "RABBITMQ_QUEUE", "QDRANT_HOST", "QDRANT_PATH", "QDRANT_COLLECTION"):
        monkeypatch.delenv(name, raising=False)
    rabbit = load_settings(RabbitSettings)
    qdrant = load_settings(QdrantSettings)
    assert (rabbit.rabbitmq_host, rabbit.rabbitmq_queue, rabbit.rabbitmq_vhost) == (
        "rabbitmq",
        "images.downloaded",
        "/",
    )
    assert (qdrant.qdrant_host, qdrant.qdrant_collection, qdrant.qdrant_path) == ("qdrant", "images", None)


def test_environment_variables_are_read_without_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_PORT", "5673")
    monkeypatch.setenv("QDRANT_PATH", "/tmp/q")
    assert load_settings(RabbitSettings).rabbitmq_port == 5673
    assert str(load_settings(QdrantSettings).qdrant_path) == "/tmp/q"


def test_a_wrong_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_PORT", "not-a-port")
    with pytest.raises(SettingsError, match=r"^RABBITMQ_PORT='not-a-port': Input should be a valid integer"):
        load_settings(RabbitSettings)


def test_entry_points_exit_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QDRANT_PORT", "70000")
    with pytest.raises(SystemExit) as exit_info:
        settings_or_exit(QdrantSettings)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("configuration error: QDRANT_PORT=")
    assert len(err.splitlines()) == 1


def test_production_refuses_the_guest_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("RABBITMQ_PASSWORD", "guest")
    with pytest.raises(SettingsError, match="RABBITMQ_PASSWORD is a placeholder") as info:
        load_settings(RabbitSettings)
    assert "guest" not in str(info.value).replace("RABBITMQ_PASSWORD is a placeholder", "")
    monkeypatch.setenv("RABBITMQ_PASSWORD", "s3cret-long-one")
    assert load_settings(RabbitSettings).rabbitmq_password.get_secret_value() == "s3cret-long-one"


def test_parse_networks() -> None:
    networks = parse_networks(" 127.0.0.1/32, ::1/128 ,,")
    assert [str(n) for n in networks] == ["127.0.0.1/32", "::1/128"]
    assert parse_networks("") == ()
