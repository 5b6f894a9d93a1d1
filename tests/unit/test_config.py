"""Configuration: file, environment (wins), secret files, and one-line errors that name the key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from rebalancerd.config import ConfigError, load_settings

BASE_ENV = {"HOME": "/home/op"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_match_the_contract() -> None:
    s = load_settings(None, BASE_ENV)
    assert s.database.url is None
    assert s.scheduler.enabled is True
    assert s.scheduler.check_interval == "0 * * * *"
    assert s.scheduler.dry_run is False
    assert s.scheduler.auto_start is True
    assert s.scheduler.max_concurrency == 1
    assert s.kraken.api_url == "https://api.kraken.com"
    assert s.http.listen == "127.0.0.1:8080"
    assert s.http.api_token is None
    assert s.state_dir == Path("/home/op/.local/state/rebalancerd")
    assert s.accounts["default"].mode == "paper"
    assert s.accounts["default"].balances == {"EUR": Decimal("10000")}


def test_state_directory_from_systemd() -> None:
    s = load_settings(None, {**BASE_ENV, "STATE_DIRECTORY": "/var/lib/rebalancerd:/var/lib/x"})
    assert s.state_dir == Path("/var/lib/rebalancerd")
    s = load_settings(None, {**BASE_ENV, "STATE_DIRECTORY": "/a", "REBALANCERD_STATE_DIR": "/b"})
    assert s.state_dir == Path("/b")


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[database]
url = "postgresql://u@db/x"
[scheduler]
enabled = false
check_interval = "0 */6 * * *"
dry_run = true
auto_start = false
max_concurrency = 4
[http]
listen = "127.0.0.1:9000"
[kraken]
api_url = "http://127.0.0.1:1234/"
[accounts.sandbox]
mode = "paper"
balances = { EUR = "500.50", BTC = "0.1" }
""",
    )
    s = load_settings(path, BASE_ENV)
    assert s.database.url is not None
    assert s.database.url.get_secret_value() == "postgresql://u@db/x"
    assert (s.scheduler.enabled, s.scheduler.dry_run, s.scheduler.auto_start) == (
        False,
        True,
        False,
    )
    assert s.scheduler.check_interval == "0 */6 * * *"
    assert s.scheduler.max_concurrency == 4
    assert s.http.port == 9000
    assert s.kraken.api_url == "http://127.0.0.1:1234"
    assert s.accounts["sandbox"].balances == {"EUR": Decimal("500.50"), "BTC": Decimal("0.1")}
    assert set(s.accounts) == {"default", "sandbox"}


@pytest.mark.parametrize(
    ("env", "attr", "expected"),
    [
        ({"SCHEDULER_ENABLED": "false"}, ("scheduler", "enabled"), False),
        ({"SCHEDULER_DRY_RUN": "true"}, ("scheduler", "dry_run"), True),
        ({"SCHEDULER_AUTO_START": "0"}, ("scheduler", "auto_start"), False),
        (
            {"SCHEDULER_CHECK_INTERVAL": "*/5 * * * *"},
            ("scheduler", "check_interval"),
            "*/5 * * * *",
        ),
        ({"REBALANCERD_LISTEN": "127.0.0.1:7000"}, ("http", "listen"), "127.0.0.1:7000"),
        ({"KRAKEN_API_URL": "http://localhost:1"}, ("kraken", "api_url"), "http://localhost:1"),
    ],
)
def test_environment_wins_over_file(
    tmp_path: Path, env: dict[str, str], attr: tuple[str, str], expected: object
) -> None:
    path = write(
        tmp_path,
        """
[scheduler]
enabled = true
dry_run = false
auto_start = true
check_interval = "0 * * * *"
[http]
listen = "127.0.0.1:8080"
[kraken]
api_url = "https://api.kraken.com"
""",
    )
    s = load_settings(path, {**BASE_ENV, **env})
    assert getattr(getattr(s, attr[0]), attr[1]) == expected


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[http]\nlisten = "127.0.0.1:9999"\n')
    s = load_settings(None, {**BASE_ENV, "REBALANCERD_CONFIG": str(path)})
    assert s.http.port == 9999


def test_kraken_key_in_environment_makes_default_live() -> None:
    s = load_settings(
        None, {**BASE_ENV, "KRAKEN_API_KEY": "k" * 20, "KRAKEN_API_SECRET": "c2VjcmV0"}
    )
    account = s.accounts["default"]
    assert account.mode == "live"
    assert account.api_key is not None and account.api_key.get_secret_value() == "k" * 20


def test_secret_files_and_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("file-key\n")
    (tmp_path / "secret").write_text("file-secret\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "api-token").write_text("tok-from-creds-0123456789\n")
    (creds / "kraken-key.spare").write_text("spare-key")
    (creds / "kraken-secret.spare").write_text("spare-secret")
    path = write(
        tmp_path,
        f"""
[accounts.main]
mode = "live"
api_key_file = "{tmp_path / "key"}"
api_secret_file = "{tmp_path / "secret"}"
[accounts.spare]
tier = "pro"
""",
    )
    s = load_settings(path, {**BASE_ENV, "CREDENTIALS_DIRECTORY": str(creds)})
    main = s.accounts["main"]
    assert main.api_key is not None and main.api_key.get_secret_value() == "file-key"
    assert main.api_secret is not None and main.api_secret.get_secret_value() == "file-secret"
    assert s.accounts["spare"].mode == "live"  # credentials found for it
    assert s.http.api_token is not None
    assert s.http.api_token.get_secret_value() == "tok-from-creds-0123456789"
    assert s.accounts["default"].mode == "paper"


def test_secrets_never_in_repr_or_errors(tmp_path: Path) -> None:
    env = {
        **BASE_ENV,
        "KRAKEN_API_KEY": "SUPERSECRETKEY",
        "KRAKEN_API_SECRET": "SUPERSECRETSEC",
        "REBALANCERD_API_TOKEN": "SUPERSECRETTOK-0123456789",
        "DATABASE_URL": "postgresql://u:PASSWORD@h/d",
    }
    s = load_settings(None, env)
    text = repr(s) + str(s) + s.model_dump_json()
    for secret in ("SUPERSECRETKEY", "SUPERSECRETSEC", "SUPERSECRETTOK", "PASSWORD"):
        assert secret not in text
    with pytest.raises(ConfigError) as err:
        load_settings(None, {**env, "SCHEDULER_MAX": "x", "REBALANCERD_LISTEN": "nope"})
    assert "SUPERSECRET" not in str(err.value)


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        (
            '[scheduler]\ncheck_interval = "every hour"\n',
            {},
            "scheduler.check_interval: cron expression 'every hour' has 2 fields, expected 5",
        ),
        # Valid to croniter, but never fires: the loop would die on it after start.
        (
            '[scheduler]\ncheck_interval = "0 0 30 2 *"\n',
            {},
            "scheduler.check_interval: invalid cron expression '0 0 30 2 *'",
        ),
        ("", {"SCHEDULER_CHECK_INTERVAL": "0 0 30 2 *"}, "scheduler.check_interval"),
        ("", {"SCHEDULER_CHECK_INTERVAL": "61 * * * *"}, "scheduler.check_interval"),
        ("", {"SCHEDULER_ENABLED": "perhaps"}, "scheduler.enabled"),
        ("", {"REBALANCERD_LISTEN": "8080"}, "http.listen: expected host:port"),
        ("", {"REBALANCERD_LISTEN": "127.0.0.1:99999"}, "http.listen"),
        ("", {"REBALANCERD_LISTEN": "0.0.0.0:8080"}, "without http.api_token"),
        ('[http]\napi_token = ""\n', {}, "http.api_token: must be at least 16 characters"),
        ("", {"REBALANCERD_API_TOKEN": "x" * 15}, "http.api_token: must be at least 16"),
        ('[http]\napi_token = " padded-token-0123456789"\n', {}, "http.api_token: must not"),
        ("[http]\nallowed_hosts = 3\n", {}, "http.allowed_hosts"),
        ('[http]\nallowed_hosts = ["https://a.example"]\n', {}, "http.allowed_hosts"),
        ('[http]\nallowed_hosts = ["a.example:8080"]\n', {}, "not a host name"),
        ('[http]\nallowed_hosts = ["*"]\n', {}, "not a host name"),
        ("", {"REBALANCERD_ALLOWED_HOSTS": "a.example,evil example"}, "http.allowed_hosts"),
        ("[http]\nkeepalive_timeout = 0\n", {}, "http.keepalive_timeout"),
        ("[http]\nread_timeout = -1\n", {}, "http.read_timeout"),
        ("", {"KRAKEN_API_URL": "ftp://x"}, "kraken.api_url: expected an http(s) URL"),
        ("[scheduler]\nmax_concurrency = 0\n", {}, "scheduler.max_concurrency"),
        ("[scheduler]\nbogus = 1\n", {}, "scheduler.bogus: Extra inputs are not permitted"),
        ('[accounts.a]\nmode = "live"\n', {}, "accounts.a: a live account needs api_key"),
        ('[accounts.a]\nmode = "moon"\n', {}, "accounts.a.mode"),
        ('[accounts.a]\ntier = "gold"\n', {}, "accounts.a.tier"),
        ('[accounts.a]\nbalances = { EUR = "lots" }\n', {}, "accounts.a.balances.EUR"),
        ("accounts = 3\n", {}, "accounts: expected a table"),
        (
            '[accounts.a]\napi_key_file = "/nonexistent/key"\n',
            {},
            "accounts.a.api_key_file: cannot read",
        ),
        ("[database\n", {}, "cannot read config file"),
        ('log_level = "LOUD"\n', {}, "log_level"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, toml: str, env: dict[str, str], message: str) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as err:
        load_settings(path, {**BASE_ENV, **env})
    text = str(err.value)
    assert message in text
    assert "\n" not in text


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.toml", BASE_ENV)


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    path = write(tmp_path, f'[http]\napi_token_file = "{tmp_path / "empty"}"\n')
    with pytest.raises(ConfigError, match=r"http\.api_token_file: .* is empty"):
        load_settings(path, BASE_ENV)


def test_a_short_token_file_names_the_token(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("short\n")
    path = write(tmp_path, f'[http]\napi_token_file = "{tmp_path / "token"}"\n')
    with pytest.raises(ConfigError, match=r"http\.api_token: must be at least 16") as err:
        load_settings(path, BASE_ENV)
    assert "short" not in str(err.value).replace("16 characters", "")


def test_allowed_hosts_from_file_or_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[http]\nallowed_hosts = ["Rebalancer.Example.", "[FD00::5]", "10.0.0.2"]\n'
    )
    s = load_settings(path, BASE_ENV)
    assert s.http.allowed_hosts == ("rebalancer.example", "fd00::5", "10.0.0.2")
    env = {**BASE_ENV, "REBALANCERD_ALLOWED_HOSTS": " a.example, b.example ,"}
    assert load_settings(path, env).http.allowed_hosts == ("a.example", "b.example")
    assert load_settings(None, BASE_ENV).http.allowed_hosts == ()


def test_token_allows_public_listen() -> None:
    s = load_settings(
        None, {**BASE_ENV, "REBALANCERD_LISTEN": "0.0.0.0:8080", "REBALANCERD_API_TOKEN": "t" * 32}
    )
    assert s.http.host == "0.0.0.0"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.5"])
def test_loopback_needs_no_token(host: str) -> None:
    s = load_settings(None, {**BASE_ENV, "REBALANCERD_LISTEN": f"{host}:8080"})
    assert s.http.api_token is None


def test_demo_defaults_and_env_still_wins() -> None:
    s = load_settings(None, BASE_ENV, demo=True)
    assert s.paper.prices == "simulated"
    assert s.scheduler.check_interval == "* * * * *"
    assert s.accounts["sandbox"].mode == "paper"
    s = load_settings(None, {**BASE_ENV, "SCHEDULER_CHECK_INTERVAL": "0 * * * *"}, demo=True)
    assert s.scheduler.check_interval == "0 * * * *"


def test_example_config_loads() -> None:
    example = Path(__file__).parents[2] / "config.example.toml"
    s = load_settings(example, BASE_ENV)
    assert s.http.listen
    assert s.http.allowed_hosts == () and s.http.keepalive_timeout == 30.0
