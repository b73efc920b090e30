"""Reads simulated miners with pyasic, the third-party client: identification (get_miner) and
get_data() for each address given, printed as one JSON object per line for the Rust test
(hardware/sim/tests/pyasic.rs) to compare with the miners' ground truth."""

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


async def main() -> None:
    results = await asyncio.gather(*(read(ip) for ip in sys.argv[1:]))
    for result in results:
        print(json.dumps(result), flush=True)


asyncio.run(main())
