"""Settings: one frozen pydantic model from the TOML file, then the environment (which wins)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from rebalancerd import schedule
from rebalancerd.notify.types import EVENT_TYPES

MIN_TOKEN_LENGTH = 16
HOST_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*")

EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h: systemd and operators read it as "fix the config"

# Environment name -> (section, key) in the TOML file. Fixed by the contract.
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "DATABASE_URL": ("database", "url"),
    "SCHEDULER_ENABLED": ("scheduler", "enabled"),
    "SCHEDULER_CHECK_INTERVAL": ("scheduler", "check_interval"),
    "SCHEDULER_DRY_RUN": ("scheduler", "dry_run"),
    "SCHEDULER_AUTO_START": ("scheduler", "auto_start"),
    "KRAKEN_API_URL": ("kraken", "api_url"),
    "KRAKEN_API_KEY": ("accounts", "default", "api_key"),
    "KRAKEN_API_SECRET": ("accounts", "default", "api_secret"),
    "REBALANCERD_LISTEN": ("http", "listen"),
    "REBALANCERD_API_TOKEN": ("http", "api_token"),
    "REBALANCERD_READ_TOKEN": ("http", "read_token"),  # the dashboard's read-only token
    "REBALANCERD_ALLOWED_HOSTS": ("http", "allowed_hosts"),  # comma-separated
    "REBALANCERD_STATE_DIR": ("state_dir",),
    "REBALANCERD_LOG_LEVEL": ("log_level",),
}


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line that names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatabaseSettings(_Section):
    url: SecretStr | None = None  # a DSN may carry a password: never shown
    connect_timeout: float = Field(default=60.0, gt=0)  # how long start-up waits for PostgreSQL
    pool_size: int = Field(default=10, ge=2, le=100)


class SchedulerSettings(_Section):
    enabled: bool = True
    check_interval: str = "0 * * * *"
    dry_run: bool = False
    auto_start: bool = True
    max_concurrency: int = Field(default=1, ge=1, le=64)
    lease_seconds: int = Field(default=60, ge=5, le=3600)
    # Dashboard snapshots: kept this long; also taken of every enabled portfolio at each check
    # tick when snapshot_every_tick (one balance and price read per portfolio and tick).
    snapshot_retention_days: int = Field(default=90, ge=1, le=3650)
    snapshot_every_tick: bool = True

    @field_validator("check_interval")
    @classmethod
    def _cron(cls, value: str) -> str:
        # The loop's own validator: a cron that can never fire ("0 0 30 2 *") is refused here,
        # not found by the loop after the daemon has started.
        return schedule.check_cron(value)


class HttpSettings(_Section):
    listen: str = "127.0.0.1:8080"
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    # Sees everything, changes nothing (every write is 403): for a dashboard on a wall screen.
    read_token: SecretStr | None = None
    read_token_file: Path | None = None
    # Host names served besides loopback ones and the listen address (DNS-rebinding guard).
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = Field(default=65536, ge=1024)
    # An idle connection (one that has not sent a whole request yet, too) is closed after this.
    keepalive_timeout: float = Field(default=30.0, gt=0, le=3600)
    # A request body must have arrived this many seconds after its headers (else 408).
    read_timeout: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("api_token", "read_token")
    @classmethod
    def _long_token(cls, value: SecretStr | None) -> SecretStr | None:
        token = None if value is None else value.get_secret_value()
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            # An empty token would let a bare "Authorization: Bearer" in; a short one is guessed.
            raise ValueError(
                f"must be at least {MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 32)"
            )
        if token is not None and (token != token.strip() or not token.isprintable()):
            raise ValueError("must not contain spaces at either end or control characters")
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_names(cls, value: Any) -> Any:
        if isinstance(value, str):  # REBALANCERD_ALLOWED_HOSTS="a.example,b.example"
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            return value  # pydantic says what is wrong
        return tuple(_host_name(str(item)) for item in value)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port, got {value!r}")
        return value

    @model_validator(mode="after")
    def _read_token_needs_api_token(self) -> HttpSettings:
        if self.read_token is None:
            return self
        if self.api_token is None:
            # Without a write token anyone could write, which makes a read-only token pointless.
            raise ValueError("http.read_token: needs http.api_token as well")
        if self.read_token.get_secret_value() == self.api_token.get_secret_value():
            raise ValueError("http.read_token: must differ from http.api_token")
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class KrakenSettings(_Section):
    api_url: str = "https://api.kraken.com"
    timeout: float = Field(default=10.0, gt=0, le=120)

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")


class AccountSettings(_Section):
    mode: Literal["live", "paper"] = "paper"
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    api_secret: SecretStr | None = None
    api_secret_file: Path | None = None
    tier: Literal["starter", "intermediate", "pro"] = "starter"
    balances: dict[str, Decimal] = Field(default_factory=lambda: {"EUR": Decimal("10000")})
    fee_rate: Decimal = Field(default=Decimal("0.0026"), ge=0, lt=1)  # paper accounts only

    @model_validator(mode="after")
    def _live_needs_credentials(self) -> AccountSettings:
        if self.mode == "live" and (self.api_key is None or self.api_secret is None):
            raise ValueError("a live account needs api_key and api_secret (or their *_file)")
        return self


class PaperSettings(_Section):
    prices: Literal["kraken", "simulated"] = "kraken"  # where paper accounts get their prices
    seed: int = 1


# ===== notifications ([notify], [[notify.webhook]]) =====


class WebhookSettings(_Section):
    """One receiver: where, in which shape, which events, and the secret that signs them."""

    url: str
    format: Literal["json", "slack", "discord", "ntfy"] = "json"
    events: tuple[str, ...] = EVENT_TYPES  # default: all
    secret: SecretStr | None = None  # "whsec_<base64>" (Standard Webhooks); or secret_file
    secret_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http(s) URL")  # never the value: it may hold a token
        return value

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event type(s) {unknown}; known: {list(EVENT_TYPES)}")
        return value

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret_bytes(value.get_secret_value())  # raises ValueError naming what is wrong
        return value

    @property
    def hook(self) -> str:
        """host#digest: names this receiver in the database and API without its URL (Slack and
        Discord URLs are credentials)."""
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        return f"{urlsplit(self.url).hostname}#{digest}"


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret ("whsec_" + base64 of 24 to 64 bytes)."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "must be whsec_ followed by base64 (e.g. openssl rand -base64 32)"
        ) from None
    if not 24 <= len(key) <= 64:
        raise ValueError("must encode 24 to 64 random bytes (e.g. openssl rand -base64 32)")
    return key


class NotifySettings(_Section):
    webhook: tuple[WebhookSettings, ...] = ()
    retry_initial_seconds: float = Field(default=5.0, gt=0)  # then doubling, with jitter
    retry_max_seconds: float = Field(default=600.0, gt=0)
    give_up_after_hours: float = Field(default=24.0, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)  # one attempt, connect to end
    max_in_flight: int = Field(default=8, ge=1, le=256)  # all receivers together
    max_in_flight_per_hook: int = Field(default=2, ge=1, le=64)  # so one slow one cannot hog
    retention_days: float = Field(default=7.0, gt=0)  # delivered and given-up rows, then pruned
    dashboard_url: str | None = None  # default: http://<http.listen>/

    @model_validator(mode="after")
    def _consistent(self) -> NotifySettings:
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ValueError("retry_max_seconds must be >= retry_initial_seconds")
        hooks = [w.hook for w in self.webhook]
        if len(set(hooks)) != len(hooks):
            raise ValueError("webhook: the same url is listed twice")
        return self


def _resolve_webhook_secrets(raw: dict[str, Any]) -> None:
    """Each [[notify.webhook]]'s secret_file, read like the other *_file keys."""
    notify = raw.get("notify")
    hooks = notify.get("webhook") if isinstance(notify, dict) else None
    if not isinstance(hooks, list):
        return
    for i, hook in enumerate(hooks):
        if isinstance(hook, dict):
            _fill_secret(hook, "secret", f"notify.webhook.{i}", None, "")


# ===== end of notifications =====


class SafetySettings(_Section):
    """Limits over every portfolio (each portfolio has its own safety fields too)."""

    # The most EUR one run may trade, sells and buys together; a bigger plan is scaled down.
    max_trade_value_eur: Decimal | None = Field(default=None, gt=0)


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    http: HttpSettings = HttpSettings()
    kraken: KrakenSettings = KrakenSettings()
    paper: PaperSettings = PaperSettings()
    accounts: dict[str, AccountSettings] = Field(default_factory=dict)
    safety: SafetySettings = SafetySettings()
    state_dir: Path
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    notify: NotifySettings = NotifySettings()

    @model_validator(mode="after")
    def _token_off_loopback(self) -> Settings:
        if self.http.api_token is None and not _is_loopback(self.http.host):
            raise ValueError(
                f"http.listen: refusing to listen on {self.http.listen} without http.api_token"
            )
        return self


def _host_name(value: str) -> str:
    """A bare host name or IP address, lower-case, without brackets or a final dot."""
    name = value.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not HOST_NAME.fullmatch(name):
        raise ValueError(f"{value.strip()[:100]!r} is not a host name (no scheme, port or '*')")
    return name


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(
    path: Path | None = None, environ: Mapping[str, str] | None = None, *, demo: bool = False
) -> Settings:
    """Build the settings from the file, the environment and secret files; ConfigError if bad."""
    env = os.environ if environ is None else environ
    path = path or (Path(env["REBALANCERD_CONFIG"]) if env.get("REBALANCERD_CONFIG") else None)
    raw = _read_toml(path) if path else {}
    _overlay_env(raw, env)
    raw.setdefault("state_dir", _default_state_dir(env))
    _default_account(raw)
    if demo:
        _demo_defaults(raw)
    _resolve_secrets(raw, env)
    _resolve_webhook_secrets(raw)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def _overlay_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, keys in ENV_KEYS.items():
        value = env.get(name)
        if value is None or value == "":
            continue
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{'.'.join(keys[:-1])}: expected a table")
        node[keys[-1]] = value
        if keys[0] == "accounts":
            node.setdefault("mode", "live")  # KRAKEN_API_KEY means trading for real


def _default_state_dir(env: Mapping[str, str]) -> str:
    if env.get("STATE_DIRECTORY"):
        return env["STATE_DIRECTORY"].split(":")[0]  # systemd may list several
    return str(Path(env.get("HOME", "~")).expanduser() / ".local" / "state" / "rebalancerd")


def _default_account(raw: dict[str, Any]) -> None:
    accounts = raw.setdefault("accounts", {})
    if not isinstance(accounts, dict):
        raise ConfigError("accounts: expected a table of [accounts.NAME] tables")
    accounts.setdefault("default", {})  # paper unless credentials make it live


def _demo_defaults(raw: dict[str, Any]) -> None:
    """Offline prices, a second paper account and frequent checks, unless configured."""
    raw.setdefault("paper", {}).setdefault("prices", "simulated")
    raw.setdefault("scheduler", {}).setdefault("check_interval", "* * * * *")
    # BTC.F: a Kraken Rewards balance, held and traded like spot BTC (as on Kraken).
    sandbox = {"mode": "paper", "balances": {"EUR": "5000", "BTC.F": "0.02"}}
    raw["accounts"].setdefault("sandbox", sandbox)


def _resolve_secrets(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    """Fill api_token/api_key/api_secret from *_file paths or $CREDENTIALS_DIRECTORY."""
    creds = Path(env["CREDENTIALS_DIRECTORY"]) if env.get("CREDENTIALS_DIRECTORY") else None
    http = raw.get("http")
    if isinstance(http, dict) or creds:
        http = raw.setdefault("http", {})
        _fill_secret(http, "api_token", "http", creds, "api-token")
        _fill_secret(http, "read_token", "http", creds, "read-token")
    for name, account in raw["accounts"].items():
        if not isinstance(account, dict):
            continue
        suffix = "" if name == "default" else f".{name}"
        for field, cred in (("api_key", "kraken-key"), ("api_secret", "kraken-secret")):
            _fill_secret(account, field, f"accounts.{name}", creds, cred + suffix)
        if account.get("api_key") and account.get("api_secret"):
            account.setdefault("mode", "live")


def _fill_secret(
    table: dict[str, Any], field: str, where: str, creds: Path | None, cred_name: str
) -> None:
    if table.get(field):
        return
    file = table.get(f"{field}_file")
    if file:
        table[field] = _read_secret(Path(file), f"{where}.{field}_file")
    elif creds and (creds / cred_name).is_file():
        table[field] = _read_secret(creds / cred_name, f"credential {cred_name}")


def _read_secret(path: Path, key: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{key}: {path} is empty")
    return value


def _one_line(exc: ValidationError) -> str:
    """Every error as `key.path: reason`; never the offending value (it may be a secret)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        key = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{key}: {msg}" if key else msg)
    return "config error: " + "; ".join(parts)
