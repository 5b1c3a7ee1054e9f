"""Every setting takes effect where the docs say: both directions between the code, `.env.example`
and docker-compose.yml.

* Every variable a service reads (its pydantic-settings class, its own ``os.environ`` reads, the
  proxy's entrypoint) is documented in `.env.example`, and is in its compose service's environment:
  passed from `.env`, or set by compose itself, which the paragraph of `.env.example` then says.
* Every variable of `.env.example`, given a value of its own in `.env`, shows that value in
  ``docker compose config`` in each service that reads it (or, for compose's own settings such as
  published ports, somewhere in the service that uses it); a documented variable nothing reads fails.

The services and what they read are found in the code (testkit.settings_readers), so a setting or a
settings class added later is held to the same rules. ``docker compose config`` is the real CLI when
this machine has one (the container smoke runs this check with it too) and testkit's rendering of the
same file otherwise; the test prints which.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from testkit import REPO_ROOT
from testkit.compose import COMPOSE, DUMMY_DOTENV, load_compose, rendered
from testkit.settings_readers import (
    OVERRIDE_SETTINGS,
    SERVICE_SETTINGS,
    SETTINGS_CLASSES,
    documented,
    load_class,
    reads,
    says_compose_sets,
    settings_class,
    settings_classes_in,
)

pytestmark = pytest.mark.unit

# Compose's own variable: which profiles run (tests/test_compose.py checks what it switches).
COMPOSE_OWN = {"COMPOSE_PROFILES"}
# Values compose itself must parse (published ports): the token is what shows in the rendered config.
SENTINELS = {
    "APP_PUBLISH": ("127.0.0.1:18531", "18531"),
    "PROXY_PUBLISH_HTTP": ("127.0.0.1:18532", "18532"),
    "PROXY_PUBLISH_HTTPS": ("127.0.0.1:18533", "18533"),
}


def sentinel(name: str) -> tuple[str, str]:
    """A value for ``name`` no default has, and the text that shows it arrived."""
    return SENTINELS.get(name, (f"sentinel-{name.lower()}", f"sentinel-{name.lower()}"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def readers(compose: dict[str, Any]) -> dict[str, set[str]]:
    """Compose service -> the variables it reads."""
    return {name: reads(name, service) for name, service in compose["services"].items()}


def _fixed(compose: dict[str, Any], readers: dict[str, set[str]]) -> set[str]:
    """Variables compose sets to a value of its own in some service that reads them."""
    fixed = set()
    for service, names in readers.items():
        environment = compose["services"][service].get("environment") or {}
        for name in names & set(environment):
            value = environment[name]
            if value is not None and f"${{{name}" not in str(value):
                fixed.add(name)
    return fixed


def test_every_settings_class_is_one_a_service_loads() -> None:
    """A second settings class in a member (another process) must be mapped to what runs it, so that
    its settings are held to these rules too."""
    for member, known in SETTINGS_CLASSES.items():
        extra = settings_classes_in(member) - {known} - set(OVERRIDE_SETTINGS) - set(SERVICE_SETTINGS)
        assert extra == set(), (
            f"{member} defines settings classes {sorted(extra)} that no compose service is known to load: "
            "map each in testkit/settings_readers.py"
        )


@pytest.mark.parametrize("member", sorted(SETTINGS_CLASSES))
def test_every_field_of_every_settings_class_is_documented(member: str) -> None:
    from testkit.compose import variable_names

    missing = variable_names(settings_class(member)) - set(documented())
    assert missing == set(), f".env.example does not document {sorted(missing)}"


@pytest.mark.parametrize("path", sorted(OVERRIDE_SETTINGS))
def test_a_settings_class_an_override_runs_is_documented_and_reaches_its_service(path: str) -> None:
    """The override file merged onto docker-compose.yml (as compose merges it) gives the service
    every variable of the class it runs there, and `.env.example` documents each."""
    from testkit.compose import COMPOSE, variable_names

    file, service = OVERRIDE_SETTINGS[path]
    names = variable_names(load_class(path))
    assert names - set(documented()) == set(), f".env.example does not document {sorted(names - set(documented()))}"
    raw = yaml.safe_load((REPO_ROOT / file).read_text())["services"][service].get("environment") or {}
    base = load_compose()["services"][service].get("environment") or {}
    missing = names - set(base) - set(raw)
    assert missing == set(), f"{file} does not give {service} {sorted(missing)}"
    dotenv = {**DUMMY_DOTENV, "COMPOSE_PROFILES": "direct"}
    services, _ = rendered(dotenv, files=(COMPOSE, REPO_ROOT / file))
    assert service in services


def test_every_setting_a_service_reads_is_documented_and_in_its_compose_environment(
    compose: dict[str, Any], readers: dict[str, set[str]]
) -> None:
    docs = documented()
    undocumented = {service: sorted(names - set(docs)) for service, names in readers.items() if names - set(docs)}
    assert undocumented == {}, f"read but not in .env.example: {undocumented}"
    not_passed = {
        service: sorted(names - set(compose["services"][service].get("environment") or {}))
        for service, names in readers.items()
    }
    assert {service: names for service, names in not_passed.items() if names} == {}, (
        "read by the service but not in its compose environment (a value in .env would not reach it): "
        "pass it (`NAME:` takes it from .env) or set it"
    )


def test_settings_compose_sets_itself_are_said_to_be_so_in_env_example(
    compose: dict[str, Any], readers: dict[str, set[str]]
) -> None:
    fixed = _fixed(compose, readers)
    docs = documented()
    unsaid = sorted(name for name in fixed & set(docs) if not says_compose_sets(docs[name], fixed))
    assert unsaid == [], f".env.example does not say that compose sets {unsaid} (a value in .env is not used)"


def _override_files() -> list[str]:
    return sorted({file for file, _ in OVERRIDE_SETTINGS.values()})


def test_every_documented_setting_reaches_each_service_that_reads_it(
    compose: dict[str, Any], readers: dict[str, set[str]]
) -> None:
    docs = set(documented())
    fixed = _fixed(compose, readers)
    settable = docs - fixed - COMPOSE_OWN
    dotenv = {name: sentinel(name)[0] for name in settable}
    dotenv.update({name: value for name, value in DUMMY_DOTENV.items() if name not in dotenv})
    dotenv["COMPOSE_PROFILES"] = "direct"
    services, renderer = rendered(dotenv)
    print(f"\n[settings] rendered by {renderer}")
    # A setting only an override file's service reads (OVERRIDE_SETTINGS) reaches it there.
    overridden = [rendered(dotenv, files=(COMPOSE, REPO_ROOT / file))[0] for file in _override_files()]
    lost, unread = {}, []
    for name in sorted(settable):
        value, token = sentinel(name)
        reading = [service for service, names in readers.items() if name in names]
        if reading:
            wrong = {s: services[s].get("environment", {}).get(name) for s in reading}
            wrong = {s: got for s, got in wrong.items() if got != value}
            if wrong:
                lost[name] = wrong
        elif not any(token in str(service) for rendering in (services, *overridden) for service in rendering.values()):
            unread.append(name)
    assert lost == {}, f"set in .env, but the service that reads it gets something else: {lost}"
    assert unread == [], f"documented in .env.example, but no service reads or uses it: {unread}"


@pytest.mark.parametrize("member", sorted(SETTINGS_CLASSES))
def test_an_empty_variable_means_the_default(member: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`NAME=` in .env (an example line uncommented without a value) reaches the service as an empty
    string under compose; it must mean the default, not an empty path (the current folder) or a
    parse error."""
    from testkit.compose import settings_as_compose_gives, variable_names

    cls = settings_class(member)
    defaults = settings_as_compose_gives(cls, {}, monkeypatch)
    empty = settings_as_compose_gives(cls, {name: "" for name in variable_names(cls)}, monkeypatch)
    assert empty == defaults
