"""Build each configured account's exchange: Kraken for live accounts, paper otherwise."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rebalancerd.config import Settings
from rebalancerd.exchange.kraken.client import KrakenClient
from rebalancerd.exchange.paper import PaperExchange, PaperLedger
from rebalancerd.exchange.protocol import Exchange
from rebalancerd.exchange.simulated import SimulatedMarket

log = logging.getLogger(__name__)


async def build_exchanges(
    settings: Settings,
    ledger: PaperLedger,
    *,
    on_nonce_refused: Callable[[str], None] | None = None,
) -> dict[str, Exchange]:
    """One exchange per account; paper accounts share one price source and `ledger`."""
    exchanges: dict[str, Exchange] = {}
    market: KrakenClient | SimulatedMarket | None = None
    for name, account in sorted(settings.accounts.items()):
        if account.mode == "live":
            assert account.api_key is not None and account.api_secret is not None
            exchanges[name] = KrakenClient(
                settings.kraken.api_url,
                account.api_key.get_secret_value(),
                account.api_secret.get_secret_value(),
                account.tier,
                timeout=settings.kraken.timeout,
                query_fill=False,  # the executor confirms fills in one QueryOrders per side
                on_nonce_refused=on_nonce_refused,
            )
            continue
        if market is None:
            market = _price_source(settings)
        await ledger.seed(name, account.balances)
        exchanges[name] = PaperExchange(name, market, ledger, fee_rate=account.fee_rate)
    modes = ", ".join(f"{n} ({a.mode})" for n, a in sorted(settings.accounts.items()))
    log.info("[Scheduler] Accounts: %s", modes)
    return exchanges


def _price_source(settings: Settings) -> KrakenClient | SimulatedMarket:
    if settings.paper.prices == "simulated":
        return SimulatedMarket(settings.paper.seed)
    return KrakenClient(
        settings.kraken.api_url, None, None, "starter", timeout=settings.kraken.timeout
    )


async def close_exchanges(exchanges: dict[str, Exchange]) -> None:
    """Close every client once (paper accounts share theirs)."""
    for exchange in exchanges.values():
        await exchange.close()
