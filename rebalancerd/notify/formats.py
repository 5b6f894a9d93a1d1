"""The bodies each webhook format sends. Pure: a message in, (url, JSON body) out.

- json: the Standard Webhooks shape, {"type", "timestamp", "id", "data"}.
- slack: an incoming webhook message, {"text", "blocks"} (text is the notification fallback).
- discord: an Execute Webhook body, {"content", "embeds", "allowed_mentions"}.
- ntfy: ntfy's "publish as JSON", {"topic", "title", "message", "tags", "priority", "click"},
  POSTed to the server's root; the configured URL is https://server/<topic>.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from rebalancerd.notify.text import Level, Summary, summarize

Format = Literal["json", "slack", "discord", "ntfy"]
DISCORD_COLORS: dict[Level, int] = {
    "good": 0x2EB67D,
    "info": 0x3B82F6,
    "warning": 0xECB22E,
    "danger": 0xE01E5A,
}
SLACK_EMOJI: dict[Level, str] = {
    "good": ":white_check_mark:",
    "info": ":information_source:",
    "warning": ":warning:",
    "danger": ":rotating_light:",
}
NTFY_TAGS: dict[Level, str] = {
    "good": "white_check_mark",
    "info": "information_source",
    "warning": "warning",
    "danger": "rotating_light",
}
NTFY_PRIORITY: dict[Level, int] = {"good": 3, "info": 2, "warning": 4, "danger": 5}


@dataclass(frozen=True)
class Message:
    """One event as it goes out: the same id on every attempt."""

    id: str
    type: str
    timestamp: datetime
    data: Mapping[str, Any]  # includes "link", the dashboard URL


def render(fmt: Format, url: str, message: Message) -> tuple[str, dict[str, Any]]:
    """The URL to POST to and the JSON body for `fmt`."""
    return RENDERERS[fmt](url, message)


def envelope(message: Message) -> dict[str, Any]:
    """The Standard Webhooks JSON payload."""
    return {
        "type": message.type,
        "timestamp": message.timestamp.isoformat(),
        "id": message.id,
        "data": dict(message.data),
    }


def _json(url: str, message: Message) -> tuple[str, dict[str, Any]]:
    return url, envelope(message)


def slack_escape(text: str) -> str:
    """Slack reads &, < and > as markup (`<!channel>` would ping everyone): escape them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(url: str, message: Message) -> tuple[str, dict[str, Any]]:
    s = summarize(message.type, message.data)
    title = f"{SLACK_EMOJI[s.level]} {slack_escape(s.title)}"
    body = "\n".join(slack_escape(line) for line in s.lines)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(f"*{title}*\n{body}", 3000)}}
    ]
    link = message.data.get("link")
    footer = f"{message.type} · {message.id}"
    if link:
        footer = f"<{link}|Open the dashboard> · {footer}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return url, {"text": _cut(f"{title}\n{body}".strip(), 3000), "blocks": blocks}


def _discord(url: str, message: Message) -> tuple[str, dict[str, Any]]:
    s = summarize(message.type, message.data)
    embed: dict[str, Any] = {
        "title": _cut(s.title, 256),
        "description": _cut("\n".join(s.lines), 4096),
        "color": DISCORD_COLORS[s.level],
        "timestamp": message.timestamp.isoformat(),
        "footer": {"text": f"{message.type} · {message.id}"},
    }
    if message.data.get("link"):
        embed["url"] = message.data["link"]
    # No pings: a portfolio named "@everyone" must not reach the whole server.
    body = {"content": _cut(s.title, 2000), "embeds": [embed], "allowed_mentions": {"parse": []}}
    return url, body


def ntfy_target(url: str) -> tuple[str, str]:
    """(server root, topic) of an ntfy topic URL such as https://ntfy.sh/mytopic."""
    parts = urlsplit(url)
    base, _, topic = parts.path.rstrip("/").rpartition("/")
    return urlunsplit(parts._replace(path=base + "/", query="", fragment="")), topic


def _ntfy(url: str, message: Message) -> tuple[str, dict[str, Any]]:
    root, topic = ntfy_target(url)
    s: Summary = summarize(message.type, message.data)
    body: dict[str, Any] = {
        "topic": topic,
        "title": s.title,
        "message": "\n".join(s.lines) or s.title,
        "tags": [NTFY_TAGS[s.level]],
        "priority": NTFY_PRIORITY[s.level],
    }
    if message.data.get("link"):
        body["click"] = message.data["link"]
    return root, body


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters (the services refuse longer fields)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


RENDERERS: dict[str, Callable[[str, Message], tuple[str, dict[str, Any]]]] = {
    "json": _json,
    "slack": _slack,
    "discord": _discord,
    "ntfy": _ntfy,
}
