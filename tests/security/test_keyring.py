"""Master keys from the environment: malformed entries are named, key material never shown."""

from __future__ import annotations

import base64
import contextlib
import os
import traceback

import pytest

from langmem_prod.errors import ConfigurationError
from langmem_prod.security import FileKeyVault, Keyring, TenantKeys, new_master_key

KEY_A, KEY_B = new_master_key(), new_master_key()
SHORT = base64.b64encode(os.urandom(20)).decode()
URLSAFE = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
SECRETS = (KEY_A, KEY_B, SHORT, URLSAFE)


def fragments(secret: str, size: int = 8) -> set[str]:
    """Every substring of `size` characters of a secret (and of its raw bytes' hex)."""
    texts = [secret]
    with contextlib.suppress(ValueError):
        texts.append(base64.b64decode(secret + "=" * (-len(secret) % 4), altchars=b"-_").hex())
    return {t[i : i + size] for t in texts for i in range(len(t) - size + 1)}


FRAGMENTS = set().union(*(fragments(s) for s in SECRETS))


def leaked(text: str) -> set[str]:
    return {f for f in FRAGMENTS if f in text}


def everything_shown(exc: BaseException) -> str:
    """The message, repr, and the whole formatted traceback (with causes) of an error."""
    return str(exc) + repr(exc) + "".join(traceback.format_exception(exc))


CASES = [
    # (environment, what the message must say)
    ({"LANGMEM_MASTER_KEYS": f"a:{KEY_A},:{KEY_B}"}, r"entry 2 has no key id before ':'"),
    ({"LANGMEM_MASTER_KEYS": f"a {KEY_A}"}, r"entry 1 has a space where ':' belongs"),
    ({"LANGMEM_MASTER_KEYS": f"a:{KEY_A},{KEY_B}"}, r"entry 2 has no ':' between its id"),
    ({"LANGMEM_MASTER_KEYS": f"{KEY_A}:a"}, r"entry 1 does not start with a key id.*swapped"),
    ({"LANGMEM_MASTER_KEYS": f"a:{KEY_A},,b:{SHORT}"}, r"entry 3 \(id 'b'\).* 20 bytes"),
    ({"LANGMEM_MASTER_KEYS": f"a:{KEY_A}, b:{KEY_B[:20]} {KEY_B[20:]}"}, r"entry 2 \(id 'b'\)"),
    ({"LANGMEM_MASTER_KEYS": f"a:{URLSAFE}"}, r"entry 1 \(id 'a'\): the key is not valid base64"),
    ({"LANGMEM_MASTER_KEYS": f"a:{KEY_A},b:{KEY_B},a:{KEY_B}"}, r"entries 1 and 3 both use"),
    (
        {"LANGMEM_MASTER_KEYS": f"a:{KEY_A}", "LANGMEM_PRIMARY_KEY_ID": KEY_B},
        r"LANGMEM_PRIMARY_KEY_ID is not one of the key ids in LANGMEM_MASTER_KEYS, \['a'\]",
    ),
    (
        {"LANGMEM_MASTER_KEYS": f"a:{KEY_A}", "LANGMEM_PRIMARY_KEY_ID": f"b:{KEY_B}"},
        r"LANGMEM_PRIMARY_KEY_ID is not one of",
    ),
    ({"LANGMEM_MASTER_KEYS": KEY_A}, r"entry 1 has no ':'"),
]


@pytest.mark.parametrize(("environ", "message"), CASES)
def test_malformed_keys_are_named_by_position_and_id_never_shown(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        Keyring.from_env(environ)
    assert not leaked(everything_shown(caught.value))


def test_no_key_material_in_reprs_of_keyrings_vaults_and_keys(tmp_path: object) -> None:
    ring = Keyring.from_env({"LANGMEM_MASTER_KEYS": f"a:{KEY_A}, b:{KEY_B}"})
    vault = FileKeyVault(f"{tmp_path}/vault.json", ring)
    keys = vault.create("acme")
    shown = repr(ring) + str(ring) + repr(vault) + str(vault) + repr(keys) + str(keys)
    assert "'a'" in shown and "'b'" in shown and keys.current in shown  # ids are fine
    assert not leaked(shown)
    raw = {key.hex() for key in keys.keys.values()}
    assert not any(r[i : i + 16] in shown for r in raw for i in range(0, 48, 8))
    assert isinstance(keys, TenantKeys) and "keys=" not in repr(keys)


def test_the_fragment_check_itself_catches_a_leak() -> None:
    """The check above would fail on a message that echoed any 8 characters of a key."""
    assert leaked(f"bad entry 'k1:{KEY_A[5:13]}...'")
    assert leaked(base64.b64decode(KEY_A).hex()[10:30])
