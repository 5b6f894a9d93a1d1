"""One delivery attempt over HTTP: render, sign (Standard Webhooks), POST, read the answer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import orjson
from standardwebhooks.webhooks import Webhook

from rebalancerd.config import WebhookSettings, secret_bytes
from rebalancerd.notify.formats import Format, Message, render

USER_AGENT = "rebalancerd-webhooks/1"
ANSWER_BYTES = 200  # of a receiver's reply body kept for the operator (bounded read)


@dataclass(frozen=True)
class Hook:
    """A configured receiver, ready to send to (its secret as the HMAC key)."""

    key: str  # host#digest, the name stored and shown; never the URL
    url: str
    format: Format
    events: tuple[str, ...]
    signer: Webhook | None

    @classmethod
    def from_settings(cls, hook: WebhookSettings) -> Hook:
        secret = hook.secret.get_secret_value() if hook.secret is not None else None
        signer = Webhook(secret_bytes(secret)) if secret is not None else None
        return cls(hook.hook, hook.url, hook.format, hook.events, signer)


@dataclass(frozen=True)
class Answer:
    """What the receiver answered: a status, or an error when there was no answer."""

    status: int | None
    error: str | None
    retry_after: float | None = None
    elapsed_ms: int = 0


def signed_request(
    hook: Hook, message: Message, now: datetime
) -> tuple[str, bytes, dict[str, str]]:
    """(url, body, headers) of one attempt: every attempt has the event's id, a fresh timestamp
    (receivers refuse old ones) and, with a secret, the signature of both and the body."""
    url, body = render(hook.format, hook.url, message)
    data = orjson.dumps(body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message.id,
        "webhook-timestamp": str(int(now.timestamp())),
    }
    if hook.signer is not None:
        headers["webhook-signature"] = hook.signer.sign(message.id, now, data)
    return url, data, headers


async def attempt(
    session: aiohttp.ClientSession, hook: Hook, message: Message, timeout: float
) -> Answer:
    """POST once, bounded by `timeout` from connect to the last byte read; never follows a
    redirect; never raises for the receiver's failures."""
    url, data, headers = signed_request(hook, message, datetime.now(UTC))
    started = time.monotonic()
    try:
        async with session.post(
            url,
            data=data,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            snippet = (await resp.content.read(ANSWER_BYTES)).decode(errors="replace")
            status = resp.status
            retry_after = _seconds(resp.headers.get("Retry-After"))
    except TimeoutError:
        return Answer(None, f"no answer within {timeout:g}s", elapsed_ms=_ms(started))
    except aiohttp.ClientError as exc:
        # Library messages may quote the URL, and a Slack or Discord URL is a credential.
        text = str(exc).replace(hook.url, hook.key).replace(url, hook.key)
        return Answer(None, f"{type(exc).__name__}: {text}"[:300], elapsed_ms=_ms(started))
    error = None if 200 <= status < 300 else _status_error(status, snippet)
    return Answer(status, error, retry_after, _ms(started))


def _status_error(status: int, snippet: str) -> str:
    if 300 <= status < 400:
        return f"HTTP {status}: redirect not followed (configure the final URL)"
    return f"HTTP {status}: {' '.join(snippet.split())[:150]}"


def _seconds(value: str | None) -> float | None:
    """Retry-After in delta-seconds; an HTTP date is ignored (the backoff applies)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
