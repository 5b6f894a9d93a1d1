"""Notifications, the pure parts: formats against the services' documented shapes, the retry
policy, event builders, configuration, and signing as standardwebhooks verifies it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from rebalancerd.config import ConfigError, WebhookSettings, load_settings
from rebalancerd.notify import events, policy
from rebalancerd.notify.deliver import Hook, signed_request
from rebalancerd.notify.formats import Message, ntfy_target, render, slack_escape
from rebalancerd.store.rows import HistoryRecord
from tests.notify_receiver import SECRET

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
RUN_DATA = {
    "portfolio": {"id": "p-1", "name": "Core <!channel> & @everyone"},
    "run": {"id": 12, "historyId": "h-1", "success": False, "dryRun": False, "value": "1000.5",
            "traded": "250", "ordersExecuted": 2, "ordersFailed": 1,
            "errors": ["order rejected: EOrder:Insufficient funds"], "executionCostBps": "12.5"},
    "link": "http://127.0.0.1:8080/?portfolio=p-1",
}  # fmt: skip
MESSAGE = Message("0b7f3c4e-1111-2222-3333-444455556666", "run.failed", T0, RUN_DATA)


# -- the services' documented message shapes ----------------------------------------------

# Slack incoming webhooks: {"text": "..."} with optional Block Kit "blocks"; a section's text
# is at most 3000 characters; &, < and > must be escaped.
# Discord Execute Webhook: content ≤ 2000, ≤ 10 embeds, title ≤ 256, description ≤ 4096,
# color an integer, timestamp ISO8601, allowed_mentions {"parse": [...]}.
# ntfy publish as JSON: POST to the root URL with {"topic", "message", "title", "tags",
# "priority" 1..5, "click", ...}.
SLACK_KEYS = {"text", "blocks", "attachments", "thread_ts", "mrkdwn"}
DISCORD_KEYS = {"content", "username", "avatar_url", "tts", "embeds", "allowed_mentions",
                "components", "files", "payload_json", "attachments", "flags",
                "thread_name"}  # fmt: skip
EMBED_KEYS = {"title", "type", "description", "url", "timestamp", "color", "footer", "image",
              "thumbnail", "video", "provider", "author", "fields"}  # fmt: skip
NTFY_KEYS = {"topic", "message", "title", "tags", "priority", "actions", "click", "attach",
             "markdown", "icon", "filename", "delay", "email", "call"}  # fmt: skip


def test_json_is_the_standard_webhooks_envelope() -> None:
    url, body = render("json", "https://hooks.example/r", MESSAGE)
    assert url == "https://hooks.example/r"
    assert body == {
        "type": "run.failed",
        "timestamp": "2026-12-04T12:00:00+00:00",
        "id": MESSAGE.id,
        "data": RUN_DATA,
    }


def test_slack_matches_the_incoming_webhook_shape_and_escapes_markup() -> None:
    url, body = render("slack", "https://hooks.slack.com/services/T/B/X", MESSAGE)
    assert url == "https://hooks.slack.com/services/T/B/X"
    assert set(body) <= SLACK_KEYS and isinstance(body["text"], str) and body["text"]
    section, context = body["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert len(section["text"]["text"]) <= 3000
    assert context["type"] == "context" and context["elements"][0]["type"] == "mrkdwn"
    assert "<!channel>" not in orjson.dumps(body).decode()  # escaped: no ping
    assert "&lt;!channel&gt; &amp;" in section["text"]["text"]
    assert f"<{RUN_DATA['link']}|Open the dashboard>" in context["elements"][0]["text"]
    assert "EOrder:Insufficient funds" in body["text"] and "€1000.50" in body["text"]


def test_discord_matches_execute_webhook_and_pings_nobody() -> None:
    url, body = render("discord", "https://discord.com/api/webhooks/1/tok", MESSAGE)
    assert url == "https://discord.com/api/webhooks/1/tok"
    assert set(body) <= DISCORD_KEYS
    assert body["allowed_mentions"] == {"parse": []}
    assert 0 < len(body["content"]) <= 2000
    (embed,) = body["embeds"]
    assert set(embed) <= EMBED_KEYS
    assert len(embed["title"]) <= 256 and len(embed["description"]) <= 4096
    assert isinstance(embed["color"], int) and embed["url"] == RUN_DATA["link"]
    assert datetime.fromisoformat(embed["timestamp"]) == T0
    assert "12.5 bps" in embed["description"]


def test_discord_and_slack_cut_long_texts_to_their_limits() -> None:
    many = {**RUN_DATA, "portfolio": {"id": "p", "name": "N" * 5000},
            "run": {**RUN_DATA["run"], "errors": ["E" * 3000] * 4}}  # fmt: skip
    message = Message("id", "run.failed", T0, many)
    _, discord = render("discord", "https://d.example/x", message)
    assert len(discord["content"]) <= 2000 and len(discord["embeds"][0]["title"]) <= 256
    assert len(discord["embeds"][0]["description"]) <= 4096
    _, slack = render("slack", "https://s.example/x", message)
    assert len(slack["blocks"][0]["text"]["text"]) <= 3000 and len(slack["text"]) <= 3000


def test_ntfy_publishes_json_to_the_server_root() -> None:
    url, body = render("ntfy", "https://ntfy.sh/my-rebalancer", MESSAGE)
    assert url == "https://ntfy.sh/"
    assert set(body) <= NTFY_KEYS
    assert body["topic"] == "my-rebalancer" and body["priority"] in range(1, 6)
    assert isinstance(body["tags"], list) and all(isinstance(t, str) for t in body["tags"])
    assert body["click"] == RUN_DATA["link"] and body["title"].startswith("Rebalance failed")
    assert "EOrder:Insufficient funds" in body["message"]


@pytest.mark.parametrize(
    ("url", "root", "topic"),
    [
        ("https://ntfy.sh/alerts", "https://ntfy.sh/", "alerts"),
        ("https://ntfy.example/alerts/", "https://ntfy.example/", "alerts"),
        ("http://host:8080/ntfy/alerts", "http://host:8080/ntfy/", "alerts"),
    ],
)
def test_ntfy_target(url: str, root: str, topic: str) -> None:
    assert ntfy_target(url) == (root, topic)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [("a & b", "a &amp; b"), ("<!here>", "&lt;!here&gt;"), ("plain", "plain")],
)
def test_slack_escape(text: str, escaped: str) -> None:
    assert slack_escape(text) == escaped


# -- signing ------------------------------------------------------------------------------


def test_every_format_is_signed_so_standardwebhooks_verifies_it() -> None:
    for fmt in ("json", "slack", "discord", "ntfy"):
        settings = WebhookSettings(url="https://ntfy.sh/t", format=fmt, secret=SecretStr(SECRET))
        now = datetime.now(UTC)
        _, data, headers = signed_request(Hook.from_settings(settings), MESSAGE, now)
        assert headers["webhook-id"] == MESSAGE.id
        assert headers["webhook-timestamp"] == str(int(now.timestamp()))
        Webhook(SECRET).verify(data, headers)  # raises if not
        assert SECRET.removeprefix("whsec_") not in data.decode()


def test_without_a_secret_there_is_no_signature_header() -> None:
    hook = Hook.from_settings(WebhookSettings(url="https://x.example/h"))
    _, _, headers = signed_request(hook, MESSAGE, datetime.now(UTC))
    assert "webhook-signature" not in headers and headers["webhook-id"] == MESSAGE.id


# -- retry policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(None, "retry"), (200, "delivered"), (204, "delivered"), (299, "delivered"),
     (301, "give_up"), (302, "give_up"), (307, "give_up"), (400, "give_up"), (401, "give_up"),
     (404, "give_up"), (410, "give_up"), (408, "retry"), (429, "retry"), (500, "retry"),
     (502, "retry"), (503, "retry"), (100, "retry")],
)  # fmt: skip
def test_verdict(status: int | None, verdict: str) -> None:
    assert policy.verdict(status) == verdict


@pytest.mark.parametrize(
    ("attempt", "rand", "retry_after", "delay"),
    [(1, 0.5, None, 5.0), (2, 0.5, None, 10.0), (3, 0.5, None, 20.0), (1, 0.0, None, 3.75),
     (1, 1.0, None, 6.25), (8, 0.5, None, 600.0), (20, 1.0, None, 600.0), (500, 0.5, None, 600.0),
     (1, 0.5, 30.0, 30.0), (1, 0.5, 3600.0, 600.0), (3, 0.5, 1.0, 20.0)],
)  # fmt: skip
def test_retry_delay_doubles_with_jitter_up_to_the_cap(
    attempt: int, rand: float, retry_after: float | None, delay: float
) -> None:
    assert policy.retry_delay(attempt, 5.0, 600.0, rand, retry_after) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("age_hours", "delay", "gives_up"),
    [(0, 5, False), (23.9, 60, False), (23.99, 60, True), (24, 0, False), (25, 5, True)],
)
def test_gives_up_past_the_window(age_hours: float, delay: float, gives_up: bool) -> None:
    now = T0 + timedelta(hours=age_hours)
    assert policy.gives_up(T0, now, delay, 24) is gives_up


# -- events -------------------------------------------------------------------------------


def _record(orders: list[dict[str, Any]], errors: list[str] | None) -> HistoryRecord:
    return HistoryRecord(
        id="h-1", portfolio_id="p-1", executed_at=T0, success=not errors, dry_run=False,
        portfolio_value=Decimal("1000.50"), orders_planned=len(orders), orders_executed=1,
        orders_failed=0, total_value_traded=Decimal("5E+1"), orders=orders, errors=errors,
        triggered_by="scheduler", duration=12,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("statuses", "errors", "types"),
    [
        ([], None, ["run.succeeded"]),
        (["filled"], None, ["run.succeeded"]),
        (["filled", "unknown"], ["x"], ["run.failed", "order.unknown"]),
        (["placed", "intent", "rejected"], ["x"], ["run.failed", "order.unknown", "order.unknown"]),
        (["planned"], None, ["run.succeeded"]),
    ],
)
def test_run_finished_events(
    statuses: list[str], errors: list[str] | None, types: list[str]
) -> None:
    orders = [
        {"status": s, "clientOrderId": f"c{i}", "symbol": "BTC"} for i, s in enumerate(statuses)
    ]
    found = events.run_finished(12, "Core", _record(orders, errors), T0)
    assert [e.type for e in found] == types
    assert len({e.id for e in found}) == len(found)
    run = found[0].data["run"]
    assert run["value"] == "1000.5" and run["traded"] == "50" and run["id"] == 12


@pytest.mark.parametrize(
    ("action", "was", "now", "types"),
    [("start", False, True, ["scheduler.started"]), ("start", True, True, []),
     ("stop", True, False, ["scheduler.stopped"]), ("stop", False, False, []),
     ("restart", True, True, ["scheduler.started"]),
     ("update-config", True, False, ["scheduler.stopped"]), ("update-config", True, True, [])],
)  # fmt: skip
def test_scheduler_control_events(action: str, was: bool, now: bool, types: list[str]) -> None:
    found = events.scheduler_control(action, was, now, "host:1:x", T0)
    assert [e.type for e in found] == types


def test_the_safety_events_are_ready_to_emit() -> None:
    """run.awaiting_approval and scheduler.halted: one call each, from the safety feature."""
    expires = T0 + timedelta(hours=1)
    waiting = events.awaiting_approval(9, "p-1", "Core", [{"side": "buy"}], expires, T0)
    assert waiting.type == "run.awaiting_approval"
    assert waiting.data == {
        "portfolio": {"id": "p-1", "name": "Core"},
        "run": {"id": 9, "orders": [{"side": "buy"}]},
        "expiresAt": expires.isoformat(),
    }
    halted = events.scheduler_changed("scheduler.halted", "halt", "h:1:x", T0, reason="jump 30%")
    assert halted.type == "scheduler.halted" and halted.data["reason"] == "jump 30%"
    assert set(events.EVENT_TYPES) >= {waiting.type, halted.type}


# -- configuration ------------------------------------------------------------------------


def _load(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return load_settings(path, {"HOME": str(tmp_path), **(env or {})})


def test_webhooks_parse_with_defaults_and_secret_files(tmp_path: Path) -> None:
    (tmp_path / "whsec").write_text(SECRET + "\n")
    settings = _load(
        tmp_path,
        f"""
[notify]
retry_initial_seconds = 1
dashboard_url = "https://rebalancer.example/"
[[notify.webhook]]
url = "https://hooks.example/a"
secret_file = "{tmp_path / "whsec"}"
[[notify.webhook]]
url = "https://ntfy.sh/topic"
format = "ntfy"
events = ["run.failed", "scheduler.halted"]
""",
    )
    first, second = settings.notify.webhook
    assert first.format == "json" and first.events == events.EVENT_TYPES
    assert first.secret.get_secret_value() == SECRET
    assert second.events == ("run.failed", "scheduler.halted") and second.secret is None
    assert settings.notify.retry_initial_seconds == 1
    assert (settings.notify.retry_max_seconds, settings.notify.give_up_after_hours) == (600, 24)
    assert first.hook.startswith("hooks.example#") and "/a" not in first.hook


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('url = "ftp://x/y"', "notify.webhook.0.url: expected an http(s) URL"),
        ('url = "https://x/y"\nformat = "teams"', "notify.webhook.0.format"),
        (
            'url = "https://x/y"\nevents = ["run.exploded"]',
            "unknown event type(s) ['run.exploded']",
        ),
        ('url = "https://x/y"\nsecret = "whsec_short"', "notify.webhook.0.secret: must"),
        ('url = "https://x/y"\nsecret = "not base64 !!"', "notify.webhook.0.secret: must"),
        ('url = "https://x/y"\nsecret_file = "/nonexistent/s"', "notify.webhook.0.secret_file"),
        ('url = "https://x/y"\nverify = false', "notify.webhook.0.verify"),
    ],
)
def test_bad_webhooks_are_one_line_errors_naming_the_key(
    tmp_path: Path, table: str, message: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, f"[[notify.webhook]]\n{table}\n")
    text = str(exc.value)
    assert message in text and "\n" not in text
    assert "whsec_short" not in text and "not base64" not in text  # never the secret


def test_the_same_url_twice_and_inverted_retry_bounds_are_refused(tmp_path: Path) -> None:
    twice = '[[notify.webhook]]\nurl = "https://x/y"\n' * 2
    with pytest.raises(ConfigError, match="listed twice"):
        _load(tmp_path, twice)
    with pytest.raises(ConfigError, match="retry_max_seconds must be"):
        _load(tmp_path, "[notify]\nretry_initial_seconds = 10\nretry_max_seconds = 5\n")


def test_a_bug_building_events_costs_the_event_not_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = _record(["not an order"], None)  # type: ignore[list-item]
    assert events.on_run_end(3, "Core", lambda: T0)(broken) == []
    assert "notification not built" in caplog.text
    fine = events.on_run_end(3, "Core", lambda: T0)(_record([], None))
    assert [e.type for e in fine] == ["run.succeeded"] and fine[0].created_at == T0
