"""Pure rebalance planning: balances, quotes, pair rules and targets in; orders with reasons out.

No I/O and no clock: `now` is an argument. Money is Decimal throughout. Held assets are valued
at mid; every order is priced where it will fill (bid for sells, ask for buys) and pays its fee
in EUR (Kraken's fciq), so sells bring value - fee and buys cost value + fee.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_FLOOR, Context, Decimal

from rebalancerd.decimals import eur
from rebalancerd.exchange.protocol import Balances, PairRules, Quote, Side
from rebalancerd.planning.checks import data_problem, mid, order_problem, out_of_band, validate
from rebalancerd.planning.types import (
    HUNDRED,
    ZERO,
    Plan,
    PlannedOrder,
    PortfolioRules,
    Skip,
    sum_of,
)

__all__ = [
    "Plan",
    "PlannedOrder",
    "PortfolioRules",
    "Skip",
    "mid",
    "out_of_band",
    "plan",
    "size_buys",
]

# Scaling rounds toward zero so scaled buys can never cost more than the cash there is.
_FLOOR = Context(prec=28, rounding=ROUND_FLOOR)


def plan(
    balances: Balances,
    quotes: Mapping[str, Quote],
    pairs: Mapping[str, PairRules],
    fee_rate: Decimal,
    rules: PortfolioRules,
    now: datetime,
    cash: str = "EUR",
) -> Plan:
    """The orders that bring the portfolio back to its target weights, or why there are none."""
    validate(rules, fee_rate)
    targets = dict(rules.target_weights)
    targets.setdefault(cash, ZERO)
    assets = sorted(s for s in targets if s != cash)
    problem = data_problem(assets, quotes, pairs, rules, now, cash)
    if problem is not None:
        return Plan(ZERO, {}, targets, {}, aborted=problem)
    # Only tradable amounts count: staked and held balances are neither spendable nor sold.
    amounts = {s: balances.tradable.get(s, ZERO) for s in [*assets, cash]}
    values = _values(amounts, quotes, cash)
    total = sum_of(values.values())
    current = _weights(values)
    reserve = total * targets[cash] / HUNDRED
    sells, wanted, skips = _candidates(assets, amounts, values, quotes, pairs, fee_rate, rules)
    if rules.sell_mode == "never":  # drift is reduced by buying with the cash there is
        skips += [Skip(o.symbol, o.side, o.value, "sellMode is never: not selling") for o in sells]
        sells = []
    sells, wanted, dropped = _select(sells, wanted, amounts[cash] - reserve, rules.max_orders)
    budget = amounts[cash] - reserve + sum_of(o.value - o.fee for o in sells)
    buys, unfunded = size_buys(wanted, budget, quotes, pairs, fee_rate)
    limit = trade_limit(rules, total)
    free = amounts[cash] - reserve
    orders, capped, notes = _capped((*sells, *buys), limit, free, quotes, pairs, fee_rate)
    skips += [*dropped, *unfunded, *capped]
    if not out_of_band(current, rules.target_weights, rules.band_abs, rules.band_rel):
        skips += [
            Skip(o.symbol, o.side, o.value, "portfolio is within its drift bands") for o in orders
        ]
        return Plan(total, current, targets, current, (), tuple(skips), ZERO, reserve)
    expected = _weights(_values(_after(amounts, orders, cash), quotes, cash))
    fees = sum_of(o.fee for o in orders)
    return Plan(total, current, targets, expected, orders, tuple(skips), fees, reserve, None, notes)


def trade_limit(rules: PortfolioRules, total: Decimal) -> Decimal | None:
    """The most EUR one run may trade (both sides together), or None without a cap."""
    limits = [rules.max_trade_value] if rules.max_trade_value is not None else []
    if rules.max_trade_percent is not None:
        limits.append(total * rules.max_trade_percent / HUNDRED)
    return min(limits) if limits else None


def _capped(
    orders: tuple[PlannedOrder, ...],
    limit: Decimal | None,
    free_cash: Decimal,
    quotes: Mapping[str, Quote],
    pairs: Mapping[str, PairRules],
    fee_rate: Decimal,
) -> tuple[tuple[PlannedOrder, ...], list[Skip], tuple[str, ...]]:
    """Every order scaled by one factor so their total value fits `limit`, and a note saying so.

    One factor for all keeps the plan's shape: buys shrink with the sells that fund them. A
    sell the scaling drops (under a minimum) funds nothing, so the buys are fitted again.
    """
    traded = sum_of(o.value for o in orders)
    if limit is None or traded <= limit:
        return orders, [], ()
    kept: list[PlannedOrder] = []
    skips: list[Skip] = []
    for o in orders:
        volume = _scaled(o.volume, limit, traded)
        scaled = _order(
            pairs[o.symbol], quotes[o.symbol], fee_rate, o.symbol, o.side, volume, o.deviation
        )
        problem = order_problem(pairs[o.symbol], scaled)
        if problem is None:
            kept.append(scaled)
        else:
            skips.append(Skip(o.symbol, o.side, scaled.value, f"{problem} after the trade cap"))
    sells = [o for o in kept if o.side == "sell"]
    budget = free_cash + sum_of(o.value - o.fee for o in sells)
    buys, unfunded = size_buys(
        [o for o in kept if o.side == "buy"], budget, quotes, pairs, fee_rate
    )
    kept, skips = [*sells, *buys], [*skips, *unfunded]
    now_traded = sum_of(o.value for o in kept)
    note = f"plan scaled down to the trade cap of {eur(limit)}: {eur(traded)} -> {eur(now_traded)}"
    return tuple(kept), skips, (note,)


def size_buys(
    buys: Sequence[PlannedOrder],
    eur_available: Decimal,
    quotes: Mapping[str, Quote],
    pairs: Mapping[str, PairRules],
    fee_rate: Decimal,
) -> tuple[tuple[PlannedOrder, ...], tuple[Skip, ...]]:
    """Re-price buys at the ask and scale them down together until cost plus fees fit the cash."""
    # eur_available is what may be spent: the real EUR balance minus Plan.cash_reserve.
    available = max(eur_available, ZERO)
    priced: list[PlannedOrder] = []
    skips: list[Skip] = []
    for buy in buys:
        quote, rules = quotes.get(buy.symbol), pairs.get(buy.symbol)
        if quote is None or rules is None or quote.ask <= 0:
            skips.append(Skip(buy.symbol, "buy", buy.value, f"no usable quote for {buy.symbol}"))
        else:
            priced.append(
                _order(rules, quote, fee_rate, buy.symbol, buy.side, buy.volume, buy.deviation)
            )
    need = sum_of(o.value + o.fee for o in priced)
    # Never more than planned: spare cash stays cash rather than growing a buy past its target.
    short = need > available
    note = f" after sizing to {eur(available)} available" if short else ""
    sized: list[PlannedOrder] = []
    for order in priced:
        rules = pairs[order.symbol]
        volume = _scaled(order.volume, available, need) if short else order.volume
        scaled = _order(
            rules, quotes[order.symbol], fee_rate, order.symbol, order.side, volume, order.deviation
        )
        problem = order_problem(rules, scaled)
        if problem is None:
            sized.append(scaled)
        else:
            skips.append(Skip(order.symbol, "buy", scaled.value, problem + note))
    return tuple(sized), tuple(skips)


def _values(
    amounts: Mapping[str, Decimal], quotes: Mapping[str, Quote], cash: str
) -> dict[str, Decimal]:
    """EUR value of each amount at mid."""
    # Mid, not bid: fair to assets and cash alike (bid would make cash look overweight), and
    # the spread an order really pays is already in its own bid/ask price and expected weights.
    return {s: a if s == cash else a * mid(quotes[s]) for s, a in amounts.items()}


def _weights(values: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Percent of the total per symbol; all zero for an empty portfolio."""
    total = sum_of(values.values())
    return {s: v * HUNDRED / total if total else ZERO for s, v in values.items()}


def _candidates(
    assets: Sequence[str],
    amounts: Mapping[str, Decimal],
    values: Mapping[str, Decimal],
    quotes: Mapping[str, Quote],
    pairs: Mapping[str, PairRules],
    fee_rate: Decimal,
    rules: PortfolioRules,
) -> tuple[list[PlannedOrder], list[PlannedOrder], list[Skip]]:
    """Full-size sells and buys back to target (not to a band edge), and what is skipped."""
    total = sum_of(values.values())
    sells: list[PlannedOrder] = []
    buys: list[PlannedOrder] = []
    skips: list[Skip] = []
    for symbol in assets:
        gap = total * rules.target_weights[symbol] / HUNDRED - values[symbol]
        if gap == 0:
            continue
        side: Side = "buy" if gap > 0 else "sell"
        if abs(gap) < rules.threshold:
            reason = f"deviation {eur(abs(gap))} below threshold {eur(rules.threshold)}"
            skips.append(Skip(symbol, side, abs(gap), reason))
            continue
        volume = abs(gap) / mid(quotes[symbol])
        if side == "sell":  # never more than is held (held amounts may carry more decimals)
            volume = min(volume, _round_down(amounts[symbol], pairs[symbol].lot_decimals))
        order = _order(pairs[symbol], quotes[symbol], fee_rate, symbol, side, volume, abs(gap))
        problem = order_problem(pairs[symbol], order)
        if problem is not None:
            skips.append(Skip(symbol, side, order.value, problem))
        else:
            (sells if side == "sell" else buys).append(order)
    return _ranked(sells), _ranked(buys), skips


def _select(
    sells: list[PlannedOrder], buys: list[PlannedOrder], cash: Decimal, max_orders: int | None
) -> tuple[list[PlannedOrder], list[PlannedOrder], list[Skip]]:
    """Keep the max_orders orders that correct the most EUR deviation and can be paid for."""
    # Greedy: a sell corrects its whole deviation and adds cash; a buy corrects only what the
    # cash kept so far pays for, so an unfunded buy never takes the place of the sell funding it.
    if max_orders is None:
        return sells, buys, []
    pool = _ranked([*sells, *buys])
    kept: list[PlannedOrder] = []
    while pool and len(kept) < max_orders:
        best = max(pool, key=lambda o: o.deviation if o.side == "sell" else min(o.deviation, cash))
        pool.remove(best)
        kept.append(best)
        cash += best.value - best.fee if best.side == "sell" else -(best.value + best.fee)
    reason = f"not among the {max_orders} most important orders (max_orders)"
    dropped = [Skip(o.symbol, o.side, o.value, reason) for o in pool]
    return [o for o in sells if o in kept], [o for o in buys if o in kept], dropped


def _scaled(volume: Decimal, available: Decimal, need: Decimal) -> Decimal:
    """volume x available / need, rounded toward zero at every step."""
    return _FLOOR.divide(_FLOOR.multiply(volume, available), need)


def _ranked(orders: list[PlannedOrder]) -> list[PlannedOrder]:
    """Largest deviation first, so the executor places the most important orders first."""
    return sorted(orders, key=lambda o: (-o.deviation, o.symbol))


def _order(
    rules: PairRules,
    quote: Quote,
    fee_rate: Decimal,
    symbol: str,
    side: Side,
    volume: Decimal,
    deviation: Decimal,
) -> PlannedOrder:
    """An order with its volume rounded down to the lot, priced at the side's expected fill."""
    volume = _round_down(volume, rules.lot_decimals)
    price = quote.bid if side == "sell" else quote.ask
    value = volume * price
    return PlannedOrder(symbol, rules.pair, side, volume, price, value, value * fee_rate, deviation)


def _after(
    amounts: Mapping[str, Decimal], orders: Sequence[PlannedOrder], cash: str
) -> dict[str, Decimal]:
    """Amounts once every order has filled at its expected price, fees paid in EUR."""
    after = dict(amounts)
    for o in orders:
        sign = 1 if o.side == "buy" else -1
        after[o.symbol] += sign * o.volume
        after[cash] -= sign * o.value + o.fee
    return after


def _round_down(volume: Decimal, decimals: int) -> Decimal:
    """Volume truncated to the pair's lot precision: rounding up could sell or spend too much."""
    return volume.quantize(Decimal(10) ** -decimals, rounding=ROUND_DOWN)
