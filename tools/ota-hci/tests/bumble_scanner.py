"""A Bluetooth scanner on Bumble's host stack, for ota-hci's bearer tests (bumble_bearers.rs).

It drives one of Bumble's emulated controllers (H:4 over TCP), scans passively with the
extended scanning commands and prints what it hears on stdout, one line each, fields
separated by spaces:

    ready                                 scanning (and, for periodic, the sync requested)
    adv ADDRESS legacy|extended adv|rsp HEX   an advertising report (or a scan response)
    sync ADDRESS SID                      LE Periodic Advertising Sync Established
    periodic HEX                          one periodic advertising report (reassembled)

Usage: bumble_scanner.py TRANSPORT SECONDS [ADDRESS SID]
With ADDRESS (as Bumble writes it, most significant byte first) and SID it also synchronises
to that advertiser's periodic train (LE Periodic Advertising Create Sync). It exits after
SECONDS (the test kills it earlier when it has what it needs).
"""

import asyncio
import sys

from bumble.device import Device
from bumble.hci import HCI_LE_1M_PHY, Address
from bumble.transport import open_transport


def out(*fields):
    print(*fields, flush=True)


def addr(a):
    return str(a).split("/")[0]


async def main(transport, seconds, address=None, sid=None):
    async with await open_transport(transport) as (source, sink):
        device = Device.with_hci("scanner", Address("F0:F1:F2:F3:F4:F5"), source, sink)
        await device.power_on()

        def on_advertisement(adv):
            out(
                "adv",
                addr(adv.address),
                "legacy" if adv.is_legacy else "extended",
                "rsp" if adv.is_scan_response else "adv",
                adv.data_bytes.hex(),
            )

        device.on("advertisement", on_advertisement)
        await device.start_scanning(
            legacy=False,
            active=False,
            filter_duplicates=False,
            scanning_phys=(HCI_LE_1M_PHY,),
        )
        if address is not None:
            target = Address(address, Address.RANDOM_DEVICE_ADDRESS)
            sync = await device.create_periodic_advertising_sync(target, sid)

            def on_establishment():
                out("sync", addr(sync.advertiser_address), sync.sid)

            def on_periodic(report):
                out("periodic", report.data_bytes.hex())

            sync.on("establishment", on_establishment)
            sync.on("periodic_advertisement", on_periodic)
        out("ready")
        await asyncio.sleep(seconds)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) not in (2, 4):
        sys.exit(__doc__)
    asyncio.run(
        main(
            args[0],
            float(args[1]),
            args[2] if len(args) == 4 else None,
            int(args[3]) if len(args) == 4 else None,
        )
    )
