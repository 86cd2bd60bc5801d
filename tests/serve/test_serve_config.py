"""Where a serve endpoint's settings come from: arguments, then Inngest's and stepwell's env vars."""

from __future__ import annotations

import pytest

from stepwell.errors import ConfigError
from stepwell.sdk.serve._config import DEFAULT_ORIGIN, ServeConfig, resolve_config, serve_url_for

KEY = "signkey-prod-" + "12" * 16
OTHER = "signkey-prod-" + "34" * 16


def resolve(environ: dict[str, str] | None = None, **kwargs: object) -> ServeConfig:
    return resolve_config(framework="test", environ=environ or {}, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "environ",
    [
        {"INNGEST_DEV": "1"},
        {"INNGEST_DEV": "true"},
        {"STEPWELL_DEV": "yes"},
        {"INNGEST_DEV": "http://localhost:8288"},
        {"STEPWELL_DEV": "1", "INNGEST_DEV": "0"},
    ],
)
def test_a_truthy_or_url_dev_variable_selects_dev_mode(environ: dict[str, str]) -> None:
    config = resolve(environ)
    assert config.mode == "dev"
    assert config.signing_key is None


@pytest.mark.parametrize(
    "environ", [{}, {"INNGEST_DEV": "0"}, {"INNGEST_DEV": "false"}, {"INNGEST_DEV": ""}]
)
def test_cloud_mode_is_the_default_and_needs_a_signing_key(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="INNGEST_SIGNING_KEY"):
        resolve(environ)


@pytest.mark.parametrize("name", ["INNGEST_SIGNING_KEY", "STEPWELL_SIGNING_KEY"])
def test_the_signing_key_comes_from_either_variable(name: str) -> None:
    config = resolve({name: KEY})
    assert (config.mode, config.signing_key, config.keys) == ("cloud", KEY, [KEY])


def test_inngest_variables_win_over_stepwell_ones_and_arguments_over_both() -> None:
    environ = {"INNGEST_SIGNING_KEY": KEY, "STEPWELL_SIGNING_KEY": OTHER}
    assert resolve(environ).signing_key == KEY
    assert resolve(environ, signing_key=OTHER).signing_key == OTHER


def test_the_fallback_key_is_read_and_tried_second() -> None:
    config = resolve({"INNGEST_SIGNING_KEY": KEY, "INNGEST_SIGNING_KEY_FALLBACK": OTHER})
    assert config.keys == [KEY, OTHER]


@pytest.mark.parametrize("bad", ["signkey-prod-xyz", "plainsecret", "signkey-prod-abc"])
def test_a_malformed_key_is_refused_at_startup(bad: str) -> None:
    with pytest.raises(ConfigError, match="signkey-<env>-<hex>"):
        resolve({"INNGEST_SIGNING_KEY": bad})
    with pytest.raises(ConfigError):
        resolve({"INNGEST_DEV": "1"}, signing_key_fallback=bad)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="'dev' or 'cloud'"):
        resolve(mode="prod")


def test_an_explicit_mode_wins_over_the_environment() -> None:
    assert resolve({"INNGEST_DEV": "1"}, mode="cloud", signing_key=KEY).mode == "cloud"
    assert resolve({}, mode="dev").mode == "dev"


def test_origins_default_to_the_local_engine() -> None:
    config = resolve(mode="dev")
    assert (config.api_origin, config.event_origin) == (DEFAULT_ORIGIN, DEFAULT_ORIGIN)


@pytest.mark.parametrize(
    ("environ", "api", "events"),
    [
        ({"INNGEST_BASE_URL": "http://e:1"}, "http://e:1", "http://e:1"),
        ({"STEPWELL_URL": "http://s:2/"}, "http://s:2", "http://s:2"),
        ({"INNGEST_DEV": "http://d:3"}, "http://d:3", "http://d:3"),
        (
            {
                "INNGEST_API_BASE_URL": "http://a:4",
                "INNGEST_EVENT_API_BASE_URL": "http://v:5",
                "INNGEST_BASE_URL": "http://e:1",
            },
            "http://a:4",
            "http://v:5",
        ),
        (
            {"INNGEST_BASE_URL": "http://e:1", "STEPWELL_URL": "http://s:2"},
            "http://e:1",
            "http://e:1",
        ),
        ({"INNGEST_BASE_URL": "engine:8288"}, "http://engine:8288", "http://engine:8288"),
    ],
)
def test_origin_precedence(environ: dict[str, str], api: str, events: str) -> None:
    config = resolve(environ, mode="dev")
    assert (config.api_origin, config.event_origin) == (api, events)


def test_a_bare_host_is_https_in_cloud_mode() -> None:
    config = resolve({"INNGEST_BASE_URL": "engine.example.com"}, signing_key=KEY)
    assert config.api_origin == "https://engine.example.com"


def test_arguments_win_over_origin_variables() -> None:
    config = resolve(
        {"INNGEST_BASE_URL": "http://e:1"},
        mode="dev",
        api_base_url="http://arg:1",
        event_api_base_url="http://arg:2",
    )
    assert (config.api_origin, config.event_origin) == ("http://arg:1", "http://arg:2")


def test_event_key_env_and_serve_overrides_are_read() -> None:
    config = resolve(
        {
            "INNGEST_EVENT_KEY": "ek",
            "INNGEST_SERVE_ORIGIN": "https://public.example.com",
            "STEPWELL_SERVE_PATH": "/hooks/stepwell",
            "INNGEST_ENV": "branch-1",
        },
        mode="dev",
    )
    assert (config.event_key, config.serve_origin, config.serve_path, config.env) == (
        "ek",
        "https://public.example.com",
        "/hooks/stepwell",
        "branch-1",
    )
    assert resolve({"STEPWELL_EVENT_KEY": "sk"}, mode="dev").event_key == "sk"


def test_unsigned_sync_can_be_switched_off() -> None:
    assert resolve(mode="dev").allow_unsigned_sync is True
    assert (
        resolve({"INNGEST_ENABLE_UNAUTHED_SYNC": "false"}, mode="dev").allow_unsigned_sync is False
    )


@pytest.mark.parametrize(
    ("overrides", "url"),
    [
        ({}, "http://10.0.0.5:8000/api/stepwell"),
        ({"serve_origin": "https://app.example.com"}, "https://app.example.com/api/stepwell"),
        ({"serve_origin": "app.internal:9000"}, "http://app.internal:9000/api/stepwell"),
        ({"serve_path": "proxied/stepwell"}, "http://10.0.0.5:8000/proxied/stepwell"),
        (
            {"serve_origin": "https://a.example.com/", "serve_path": "/x"},
            "https://a.example.com/x",
        ),
        ({"serve_url": "https://fixed.example.com/fn"}, "https://fixed.example.com/fn"),
    ],
)
def test_the_serve_url_drops_the_query_and_applies_overrides(
    overrides: dict[str, str], url: str
) -> None:
    config = resolve(mode="dev", **overrides)
    assert serve_url_for(config, "http://10.0.0.5:8000/api/stepwell?deployId=1&x=2") == url
