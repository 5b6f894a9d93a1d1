"""Build each configured account's exchange: Kraken for live accounts, paper otherwise."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp

from rebalancerd.config import AccountSettings, Settings
from rebalancerd.exchange.kraken.client import KrakenClient
from rebalancerd.exchange.kraken.market import KrakenMarket
from rebalancerd.exchange.kraken.transport import open_session
from rebalancerd.exchange.paper import MarketData, PaperExchange, PaperLedger
from rebalancerd.exchange.protocol import Exchange
from rebalancerd.exchange.simulated import SimulatedMarket

log = logging.getLogger(__name__)


@dataclass
class SharedKraken:
    """What a daemon's Kraken clients share: one HTTP session (one pool of kept-alive
    connections) and one KrakenMarket (Assets and AssetPairs fetched and cached once per daemon,
    not once per account)."""

    session: aiohttp.ClientSession
    market: KrakenMarket

    @classmethod
    def open(cls, settings: Settings) -> SharedKraken:
        """A session and a market; neither connects before its first call."""
        session = open_session()
        market = KrakenMarket(
            settings.kraken.api_url, session=session, timeout=settings.kraken.timeout
        )
        return cls(session, market)

    async def close(self) -> None:
        """Stop the market's refreshes, then close the session."""
        await self.market.close()
        await self.session.close()


class Exchanges(dict[str, Exchange]):
    """Each account's exchange by name, and the Kraken session and market they share (made
    when first needed: the demo, all paper and simulated, never opens one)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings
        self.kraken: SharedKraken | None = None
        self._prices: MarketData | None = None  # the paper accounts' one price source
        self.on_nonce_refused: Callable[[str], None] | None = None

    async def add(self, name: str, account: AccountSettings, ledger: PaperLedger) -> None:
        """Build account `name`'s exchange (replacing any it had)."""
        if account.mode == "live":
            assert account.api_key is not None and account.api_secret is not None
            settings = self._settings
            shared = self.shared_kraken()
            self[name] = KrakenClient(
                settings.kraken.api_url,
                account.api_key.get_secret_value(),
                account.api_secret.get_secret_value(),
                account.tier,
                market=shared.market,
                session=shared.session,
                timeout=settings.kraken.timeout,
                query_fill=False,  # the executor confirms fills in one QueryOrders per side
                on_nonce_refused=self.on_nonce_refused,
            )
            return
        if self._prices is None:
            self._prices = _price_source(self._settings, self)
        await ledger.seed(name, account.balances)
        self[name] = PaperExchange(name, self._prices, ledger, fee_rate=account.fee_rate)

    async def reload(self, fresh: Settings, ledger: PaperLedger) -> list[Exchange]:
        """Apply a reload in place: build added and changed accounts, drop removed ones.

        Returns the exchanges taken out; close them with release() once no run uses them.
        The [kraken] and [paper] sections stay as they were at start (they are shared).
        """
        old = self._settings.accounts
        self._settings = fresh.model_copy(
            update={"kraken": self._settings.kraken, "paper": self._settings.paper}
        )
        retired = [self.pop(name) for name in sorted(set(old) - set(fresh.accounts))]
        for name, account in sorted(fresh.accounts.items()):
            if old.get(name) != account:
                previous = self.get(name)
                await self.add(name, account, ledger)
                if previous is not None:
                    retired.append(previous)
        log.info("[Scheduler] Accounts: %s", _modes(fresh))
        return retired

    @staticmethod
    async def release(retired: list[Exchange]) -> None:
        """Close exchanges a reload took out. Paper accounts hold nothing of their own (their
        price source is shared by the others), so only Kraken clients are closed."""
        for exchange in retired:
            if isinstance(exchange, KrakenClient):
                await exchange.close()

    def shared_kraken(self) -> SharedKraken:
        """The daemon's one Kraken session and market."""
        if self.kraken is None:
            self.kraken = SharedKraken.open(self._settings)
        return self.kraken

    async def close(self) -> None:
        """Close every account's exchange, then what they share."""
        for exchange in self.values():
            await exchange.close()
        if self.kraken is not None:
            await self.kraken.close()


async def build_exchanges(
    settings: Settings,
    ledger: PaperLedger,
    *,
    on_nonce_refused: Callable[[str], None] | None = None,
) -> Exchanges:
    """One exchange per account. Nothing is fetched: live accounts share one session and one
    market, and paper accounts one price source and `ledger`."""
    exchanges = Exchanges(settings)
    exchanges.on_nonce_refused = on_nonce_refused
    for name, account in sorted(settings.accounts.items()):
        await exchanges.add(name, account, ledger)
    log.info("[Scheduler] Accounts: %s", _modes(settings))
    return exchanges


def _modes(settings: Settings) -> str:
    return ", ".join(f"{n} ({a.mode})" for n, a in sorted(settings.accounts.items()))


def _price_source(settings: Settings, exchanges: Exchanges) -> MarketData:
    if settings.paper.prices == "simulated":
        return SimulatedMarket(settings.paper.seed)
    return exchanges.shared_kraken().market


async def close_exchanges(exchanges: Mapping[str, Exchange]) -> None:
    """Close every exchange once, and what they share (paper accounts share their market)."""
    if isinstance(exchanges, Exchanges):
        await exchanges.close()
        return
    for exchange in exchanges.values():
        await exchange.close()
