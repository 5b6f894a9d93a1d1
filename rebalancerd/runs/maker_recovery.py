"""Maker execution (issue 16) after a crash: every child order of an intent is looked up by its
client order id, a resting one is cancelled, and all fills are stored. Nothing is sent anew."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace

from rebalancerd.exchange.protocol import Exchange, OrderState, RejectedError
from rebalancerd.runs.chase import child_id, filled_total
from rebalancerd.store.repository import Store
from rebalancerd.store.rows import OrderIntent

log = logging.getLogger(__name__)


async def resolve_maker_intent(
    store: Store, exchange: Exchange, intent: OrderIntent
) -> OrderIntent:
    """Cancel what of this intent still rests, and store what all its orders filled."""
    states: list[OrderState] = []
    for child in range(intent.child_orders):
        state = await _final_state(exchange, child_id(intent.client_order_id, child))
        if state is not None:
            states.append(state)
    resolved = settled_intent(intent, states)
    await store.save_maker_intents([resolved])
    return resolved


async def _final_state(exchange: Exchange, cid: str) -> OrderState | None:
    """The order's state once it is off the book (cancelled here if it still rested)."""
    state = await exchange.find_order(cid)
    if state is None or state.done:
        return state
    log.warning("maker: order %s was left resting; cancelling it", cid)
    with contextlib.suppress(RejectedError):  # filled or gone meanwhile: the look-up tells
        await exchange.cancel_order(cid)
    return await exchange.find_order(cid) or state


def settled_intent(intent: OrderIntent, states: list[OrderState]) -> OrderIntent:
    """The intent as its child orders left it."""
    total = filled_total(states)
    if total.volume >= intent.volume:
        status, error = "filled", None
    elif any(not s.done for s in states):
        status, error = "placed", "an order could not be cancelled yet"
    elif states:
        status, error = "canceled", "interrupted: the rest was cancelled"
    else:
        status, error = "not_placed", "the exchange never received it"
    return replace(
        intent,
        status=status,
        txid=total.txid or intent.txid,
        volume_executed=total.volume,
        cost=total.cost,
        fee=total.fee,
        avg_price=total.avg_price,
        error=error,
    )
