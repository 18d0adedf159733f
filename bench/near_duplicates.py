"""The evidence service's same-file / near-duplicate lookup as the stored photos grow.

    .venv/bin/python bench/near_duplicates.py [--sizes 1000,10000,100000] [--lookups 200]

Fills an evidence collection (with the service's own indexes) with photos of random
perceptual hashes, in bulk, and at each size times ``--lookups`` lookups the way the handler
does them (``EvidenceStore.claim_fingerprints`` then ``candidates``, in a transaction), plus
the former single ``$or`` query for comparison (at the sizes where it is still bearable).
The target (issue 11): a lookup among 100,000 photos costs at most twice one among 1,000.
``WMSJ_MONGO_URL`` picks the server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo import AsyncMongoClient

from services.evidence.domain import hash_bands
from services.evidence.store import EvidenceStore


def photo(rng: random.Random, n: int) -> dict[str, Any]:
    dhash = rng.getrandbits(64)
    return {
        "_id": f"e{n}",
        "activity_id": f"a{n // 3}",
        "unit_id": f"u{n // 30}",
        "sha256": f"{rng.getrandbits(256):064x}",
        "dhash": f"{dhash:016x}",
        "dhash_bands": hash_bands(dhash),
    }


async def lookups(
    client: AsyncMongoClient[Any], store: EvidenceStore, rng: random.Random, k: int
) -> list[float]:
    times = []
    for _ in range(k):
        query = photo(rng, -1)
        start = time.perf_counter()
        async with client.start_session() as session, await session.start_transaction():
            bands = await store.claim_fingerprints(query["sha256"], query["dhash_bands"], session)
            await store.candidates(query["sha256"], bands, session)
            await session.abort_transaction()  # the lookup only: nothing is stored
        times.append((time.perf_counter() - start) * 1000)
    return times


async def or_query(store: EvidenceStore, rng: random.Random, k: int) -> list[float]:
    times = []
    for _ in range(k):
        query = photo(rng, -1)
        start = time.perf_counter()
        await store.evidence.find(
            {"$or": [{"sha256": query["sha256"]}, {"dhash_bands": {"$in": query["dhash_bands"]}}]}
        ).to_list(None)
        times.append((time.perf_counter() - start) * 1000)
    return times


async def main(sizes: list[int], k: int) -> None:
    url = os.environ.get("WMSJ_MONGO_URL", "mongodb://127.0.0.1:27017/?retryWrites=false")
    client: AsyncMongoClient[Any] = AsyncMongoClient(url, tz_aware=True)
    name = f"bench_nd_{secrets.token_hex(3)}"
    db = client[name]
    store = EvidenceStore(db)
    await store.ensure_indexes()
    await db.create_collection("fingerprints")
    rng = random.Random(1)
    stored = 0
    rows = []
    try:
        for size in sizes:
            start = time.perf_counter()
            while stored < size:
                chunk = [photo(rng, n) for n in range(stored, min(size, stored + 1000))]
                await store.evidence.insert_many(chunk, ordered=False)
                stored += len(chunk)
            filled = time.perf_counter() - start
            times = await lookups(client, store, rng, k)
            scan = await or_query(store, rng, 5) if size <= 1_000 else []
            rows.append((size, statistics.median(times), statistics.mean(times), scan, filled))
            print(
                f"{size:>8} photos: lookup p50 {statistics.median(times):6.2f} ms, mean {statistics.mean(times):6.2f} ms"
                + (f"; former $or p50 {statistics.median(scan):8.1f} ms" if scan else "")
                + f" (filled in {filled:.0f} s)",
                flush=True,
            )
    finally:
        await client.drop_database(name)
        await client.close()
    if len(rows) > 1:
        print(f"\nlookup at {rows[-1][0]:,} / at {rows[0][0]:,}: {rows[-1][1] / rows[0][1]:.2f}× (p50)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--lookups", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")], args.lookups))
