"""Reads simulated miners with pyasic, the third-party client: identification (get_miner) and
get_data() for each address given, printed as one JSON object per line for the Rust test
(hardware/sim/tests/pyasic.rs) to compare with the miners' ground truth.

`pyasic_read.py IP...` reads; `pyasic_read.py --act IP power WATTS|sleep|wake` drives one
miner through pyasic's own control calls (set_power_limit, stop_mining, resume_mining) and
prints {"ok": bool}."""

import asyncio
import json
import sys

import pyasic
from pyasic.miners.data import DataOptions

# What a poller reads over the cgminer API (port 4028). The simulators do not serve the
# firmware's web UIs (LuCI, Antminer CGI, BOS+ gRPC), so web-only items (MAC, firmware
# version, serial, errors) are not asked for.
TELEMETRY = [
    DataOptions.HASHRATE,
    DataOptions.EXPECTED_HASHRATE,
    DataOptions.HASHBOARDS,
    DataOptions.WATTAGE,
    DataOptions.WATTAGE_LIMIT,
    DataOptions.FANS,
    DataOptions.UPTIME,
    DataOptions.POOLS,
]


def number(value):
    """pyasic hashrates are objects with a unit; float() gives TH/s (its default unit)."""
    if value is None:
        return None
    return float(value)


async def read(ip: str) -> dict:
    miner = await pyasic.get_miner(ip)
    if miner is None:
        return {"ip": ip, "identified": False}
    result = {
        "ip": ip,
        "identified": True,
        "class": type(miner).__name__,
        "make": str(miner.make) if miner.make is not None else None,
        "model": str(miner.model) if miner.model is not None else None,
        "firmware": str(miner.firmware) if miner.firmware is not None else None,
    }
    try:
        data = await miner.get_data(include=TELEMETRY)
    except Exception as error:  # pyasic raises its own and transport errors alike
        result["data_error"] = f"{type(error).__name__}: {error}"
        return result
    return result | {
        "hashrate_ths": number(data.hashrate),
        "expected_hashrate_ths": number(data.expected_hashrate),
        "wattage": data.wattage,
        "wattage_limit": data.wattage_limit,
        "uptime": data.uptime,
        "hashboards": [
            {
                "slot": b.slot,
                "hashrate_ths": number(b.hashrate),
                "chip_temp": b.chip_temp,
                "temp": b.temp,
                "chips": b.chips,
                "missing": b.missing,
            }
            for b in data.hashboards
        ],
        "fans": [f.speed for f in data.fans],
        "pools": [
            {
                "url": str(p.url) if p.url is not None else None,
                "user": p.user,
                "active": p.active,
                "alive": p.alive,
                "accepted": p.accepted,
            }
            for p in data.pools
        ],
    }


async def act(ip: str, action: str, argument: str | None) -> dict:
    miner = await pyasic.get_miner(ip)
    if miner is None:
        return {"ip": ip, "ok": False, "error": "not identified"}
    if action == "power":
        ok = await miner.set_power_limit(int(argument))
    elif action == "sleep":
        ok = await miner.stop_mining()
    elif action == "wake":
        ok = await miner.resume_mining()
    else:
        raise SystemExit(f"unknown action {action}")
    return {"ip": ip, "ok": bool(ok)}


async def main() -> None:
    if sys.argv[1] == "--act":
        ip, action = sys.argv[2], sys.argv[3]
        argument = sys.argv[4] if len(sys.argv) > 4 else None
        print(json.dumps(await act(ip, action, argument)), flush=True)
        return
    results = await asyncio.gather(*(read(ip) for ip in sys.argv[1:]))
    for result in results:
        print(json.dumps(result), flush=True)


asyncio.run(main())
