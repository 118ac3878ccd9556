"""age encryption: recipients and passphrase mode stream both ways; keys never leak."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyrage
import pytest

from dbtasks.backup.crypto import Encryption, Keys, decrypting, encrypting, parse_recipients
from dbtasks.backup.errors import BackupError, BackupUsageError
from dbtasks.backup.streams import copy

DATA = b"secret rows " * 500_000


def _encrypt(plan: Encryption) -> bytes:
    out = io.BytesIO()
    with encrypting(out, plan) as sink:
        for i in range(0, len(DATA), 100_000):
            sink.write(DATA[i : i + 100_000])
    return out.getvalue()


def _decrypt(blob: bytes, identities: list[object]) -> bytes:
    out = io.BytesIO()
    with decrypting(io.BytesIO(blob), identities, "backup X") as stream:
        copy(stream, out)
    return out.getvalue()


def test_recipient_round_trip_and_wrong_key(tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    plan = Encryption.plan([str(identity.to_public())], None)
    assert plan is not None
    blob = _encrypt(plan)
    assert DATA[:100] not in blob
    assert _decrypt(blob, [identity]) == DATA
    with pytest.raises(BackupError, match="cannot decrypt"):
        _decrypt(blob, [pyrage.x25519.Identity.generate()])
    described = json.dumps(plan.as_dict())
    assert str(identity.to_public()) not in described
    assert plan.as_dict()["recipients"][0].startswith("sha256:")


def test_passphrase_mode_wraps_a_fresh_key(tmp_path: Path) -> None:
    plan = Encryption.plan([], "pass phrase")
    assert plan is not None
    assert plan.wrapped_key is not None
    assert b"AGE-SECRET-KEY" not in plan.wrapped_key
    blob = _encrypt(plan)
    (tmp_path / "key.age").write_bytes(plan.wrapped_key)
    keys = Keys(passphrase="pass phrase")
    identities = keys.identities(plan.as_dict(), tmp_path, "backup X")
    assert _decrypt(blob, identities) == DATA
    with pytest.raises(BackupError, match="wrong passphrase"):
        Keys(passphrase="nope").identities(plan.as_dict(), tmp_path, "backup X")
    with pytest.raises(BackupError, match="is encrypted: give --passphrase-file"):
        Keys().identities(plan.as_dict(), tmp_path, "backup X")


def test_truncated_ciphertext_is_an_error() -> None:
    identity = pyrage.x25519.Identity.generate()
    plan = Encryption.plan([str(identity.to_public())], None)
    assert plan is not None
    blob = _encrypt(plan)
    with pytest.raises(BackupError, match="corrupt or truncated"):
        _decrypt(blob[:-100], [identity])


def test_recipients_from_values_and_files(tmp_path: Path) -> None:
    a, b = (str(pyrage.x25519.Identity.generate().to_public()) for _ in range(2))
    listing = tmp_path / "recipients.txt"
    listing.write_text(f"# team\n{b}\n")
    assert parse_recipients([a, str(listing)]) == [a, b]
    with pytest.raises(BackupUsageError, match="not an age recipient"):
        parse_recipients(["hunter2"])
    with pytest.raises(BackupUsageError, match="not a valid"):
        parse_recipients(["age1notakey"])
    assert Encryption.plan([], None) is None
