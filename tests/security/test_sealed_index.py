"""Sealed fields are not embedded unless the tenant opts in: a vector gives its text away.

The attack: read a stored vector from the database, embed every candidate of a small
dictionary (here the 10,000 four-digit PINs) with the same model, keep the closest.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import psycopg
import pytest

from langmem_prod.embeddings import HashingEmbeddings
from langmem_prod.errors import InvalidInputError
from langmem_prod.store.redis._driver import close_client
from tests.tenancy.test_store_encryption import ACME, World, world

__all__ = ["world"]
DIMS = 64
EMBED = HashingEmbeddings(dims=DIMS)
INDEX = {"dims": DIMS, "embed": EMBED, "fields": ["text"]}


async def stored_vectors(world: World) -> list[list[float]]:
    """Every vector the backend holds under the test's place, as the attacker reads it."""
    if world.backend.kind == "postgres":
        with psycopg.connect(world.backend.server.url) as conn:
            rows = conn.execute(f'SELECT embedding::text FROM "{world.place}".vectors').fetchall()
        return [[float(x) for x in row[0].strip("[]").split(",")] for row in rows]
    return await asyncio.to_thread(_redis_vectors, world)


def _redis_vectors(world: World) -> list[list[float]]:
    client: Any = world.backend._redis()
    try:
        blobs = [client.get(k) for k in client.scan_iter(match=f"{world.place}:*:v:*")]
    finally:
        close_client(client)
    return [list(struct.unpack(f"<{DIMS}f", blob[: DIMS * 4])) for blob in blobs if blob]


def dictionary_attack(vector: list[float]) -> str:
    """The PIN whose sentence embeds closest to `vector`."""
    candidates = [f"my card PIN is {n:04d}" for n in range(10_000)]
    scores = (
        sum(a * b for a, b in zip(v, vector, strict=True))
        for v in EMBED.embed_documents(candidates)
    )
    best = max(zip(scores, candidates, strict=True))
    return best[1][-4:]


@pytest.fixture
def needs_vectors(world: World) -> None:
    if not world.backend.has_vectors:
        pytest.skip("this PostgreSQL server has no pgvector")


@pytest.mark.usefixtures("needs_vectors")
async def test_indexing_a_sealed_field_is_refused(world: World) -> None:
    store = await world.open_store(index=INDEX)
    with pytest.raises(InvalidInputError, match=r"cannot index \['text'\].*gives away the text"):
        await world.call(store, "put", ACME, "pin", {"kind": "card", "text": "my card PIN is 4821"})
    assert await world.call(store, "get", ACME, "pin") is None and not await stored_vectors(world)
    # Without vectors, or with vectors of plaintext fields only, the put goes through.
    await world.call(store, "put", ACME, "pin", {"text": "my card PIN is 4821"}, index=False)
    await world.call(store, "put", ACME, "kind", {"kind": "card", "text": "x"}, index=["kind"])
    assert len(await stored_vectors(world)) == 1
    # A tenant that does not encrypt is indexed as before.
    await world.call(store, "put", ("tenants", "open", "n"), "k", {"text": "plain words"})
    assert len(await stored_vectors(world)) == 2


@pytest.mark.usefixtures("needs_vectors")
async def test_why_a_stored_vector_recovers_an_encrypted_pin(world: World) -> None:
    world.registry.update("acme", index_sealed=True)  # the tenant opts in, knowingly
    store = await world.open_store(index=INDEX)
    await world.call(store, "put", ACME, "pin", {"kind": "card", "text": "my card PIN is 4821"})
    assert "4821" not in (await world.stored(ACME))["pin"]  # the value is sealed...
    (vector,) = await stored_vectors(world)
    assert dictionary_attack(vector) == "4821"  # ...and its vector gives the PIN away
