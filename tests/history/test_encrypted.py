"""Encrypted chat histories on every backend: raw rows and keys hold no plaintext."""

from __future__ import annotations

import os

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langmem_prod.errors import DecryptionError
from langmem_prod.security import EncryptionCodec, Envelope, Keyring
from tests.history.conftest import MakeHistory
from tests.history.test_history_specifics import raw_bytes

SALTS = {"acme": os.urandom(32), "globex": os.urandom(32)}


async def test_encrypted_histories_store_no_plaintext(make_history: MakeHistory) -> None:
    env = Envelope(Keyring({"k1": os.urandom(32)}, "k1"), SALTS.get)
    history = await make_history("enc-1", tenant_id="acme", codec=EncryptionCodec(env, "acme"))
    await history.add_messages([HumanMessage("my card PIN is 4242"), AIMessage("noted, 4242")])
    await history.save_state({"summary": "PIN 4242"})
    assert [m.content for m in await history.get_messages()] == [
        "my card PIN is 4242",
        "noted, 4242",
    ]
    stored = await raw_bytes(history)
    assert stored and b"4242" not in stored and b"PIN" not in stored
    # The same bytes under another tenant's codec (or conversation) do not open.
    thief = await make_history("enc-1", tenant_id="acme", codec=EncryptionCodec(env, "globex"))
    with pytest.raises(DecryptionError):
        await thief.get_messages()
