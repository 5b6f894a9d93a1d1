"""Kraken asset ids (XXBT, ZEUR, DOT.S) to plain symbols (BTC, EUR, DOT.S) and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Kraken's own altnames that differ from the symbols everyone else uses.
ALIASES: Mapping[str, str] = {"XBT": "BTC", "XDG": "DOGE"}

# Legacy X/Z-prefixed ids, so names resolve even before /0/public/Assets was read. Only ids
# listed here (or whose Assets altname differs) lose their prefix: XTZ, XRP-like codes stay.
LEGACY_IDS: Mapping[str, str] = {
    "XXBT": "XBT",
    "XETH": "ETH",
    "XXDG": "XDG",
    "XXRP": "XRP",
    "XLTC": "LTC",
    "XXLM": "XLM",
    "XXMR": "XMR",
    "XZEC": "ZEC",
    "XETC": "ETC",
    "XMLN": "MLN",
    "XREP": "REP",
    "ZEUR": "EUR",
    "ZUSD": "USD",
    "ZGBP": "GBP",
    "ZCAD": "CAD",
    "ZJPY": "JPY",
    "ZAUD": "AUD",
    "ZCHF": "CHF",
}


# Kraken Rewards rows (XBT.F) are spent through the base asset ("use USDT to transact with
# your USDT and USDT.F balances"): they are holdings of it, not locked coins.
REWARDS_SUFFIX = "F"


def split_suffix(asset_id: str) -> tuple[str, str | None]:
    """`DOT.S` -> (`DOT`, `S`); `XXBT` -> (`XXBT`, None)."""
    base, dot, suffix = asset_id.partition(".")
    return (base, suffix) if dot else (asset_id, None)


def holding_of(symbol: str) -> str | None:
    """The symbol whose tradable amount a balance row adds to: BTC.F -> BTC; None if locked."""
    base, suffix = split_suffix(symbol)
    return base if suffix in (None, REWARDS_SUFFIX) else None


def _code_of(asset_id: str, altname: str) -> str:
    """The plain code of one undotted Assets row, CCXT's rule: drop X/Z only via the altname."""
    if asset_id != altname and asset_id[:1] in ("X", "Z"):
        return ALIASES.get(altname, altname)
    return ALIASES.get(asset_id, asset_id)


class AssetNames:
    """Maps Kraken asset ids to plain symbols and back; built from /0/public/Assets."""

    def __init__(self, altnames: Mapping[str, str] | None = None) -> None:
        self._plain: dict[str, str] = {}
        self._ids: dict[str, str] = {}
        merged = {**LEGACY_IDS, **(altnames or {})}
        # Plain ids first, so a suffixed id (XBT.M) can resolve its base (XBT -> BTC).
        for asset_id in sorted(merged, key=lambda asset_id: "." in asset_id):
            self._add(asset_id, merged[asset_id])

    @classmethod
    def from_assets(cls, assets: Mapping[str, Mapping[str, Any]]) -> AssetNames:
        """Build from the `result` of /0/public/Assets."""
        return cls(
            {asset_id: str(row.get("altname", asset_id)) for asset_id, row in assets.items()}
        )

    def _add(self, asset_id: str, altname: str) -> None:
        if "." in asset_id:
            self._ids[self.plain(asset_id)] = asset_id
            return
        code = _code_of(asset_id, altname)
        self._plain[asset_id] = code
        # An altname (XBT in XBT.M) resolves too, unless it is itself some asset's id.
        self._plain.setdefault(altname, code)
        self._ids[code] = asset_id

    def plain(self, asset_id: str) -> str:
        """Plain symbol: XXBT -> BTC, XDG -> DOGE, ZEUR -> EUR, XBT.M -> BTC.M, XTZ -> XTZ."""
        base, suffix = split_suffix(asset_id)
        code = self._plain.get(base, ALIASES.get(base, base))
        return f"{code}.{suffix}" if suffix is not None else code

    def is_locked(self, asset_id: str) -> bool:
        """True for bonded balances (staked, opt-in rewards, held), which are never sold."""
        # Known: staked .S/.P, opt-in rewards .M, yield-bearing .B, tokenized .T, held .HOLD.
        # Unknown suffixes count too: never sell what is not understood. Kraken Rewards (.F)
        # is the exception: Kraken sells it through the base asset.
        return holding_of(asset_id) is None

    def asset_id(self, plain: str) -> str:
        """Kraken asset id of a plain symbol: BTC -> XXBT, EUR -> ZEUR, SOL -> SOL."""
        if plain in self._ids:
            return self._ids[plain]
        base, suffix = split_suffix(plain)
        if suffix is None:
            return plain
        # BTC.M -> XBT.M: suffixed ids are built on the altname, not the X/Z id.
        base_id = self._ids.get(base, base)
        altname = LEGACY_IDS.get(base_id, base_id)
        return f"{altname}.{suffix}"
