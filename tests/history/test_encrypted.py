"""Encrypted chat histories on every backend: raw rows and keys hold no plaintext."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langmem_prod.errors import DecryptionError, KeyShreddedError
from langmem_prod.security import EncryptionCodec, Envelope, FileKeyVault, Keyring
from tests.history.conftest import MakeHistory
from tests.history.test_history_specifics import raw_bytes


async def test_encrypted_histories_store_no_plaintext(
    make_history: MakeHistory, tmp_path: Path
) -> None:
    vault = FileKeyVault(tmp_path / "vault.json", Keyring({"k1": os.urandom(32)}, "k1"))
    vault.create("acme")
    vault.create("globex")
    env = Envelope(vault)
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
    # Shredding the tenant's keys makes the conversation unreadable, and unwritable.
    vault.destroy("acme")
    with pytest.raises(KeyShreddedError):
        await history.get_messages()
    with pytest.raises(KeyShreddedError):
        await history.add_messages([HumanMessage("more")])
