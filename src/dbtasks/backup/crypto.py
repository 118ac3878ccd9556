"""Encryption in the age format (https://age-encryption.org), through pyrage.

Two ways to encrypt, combinable:

- **Recipients** (``--encrypt-to age1...``, an SSH public key, or a file of them): the data is
  encrypted to their public keys; only their private keys decrypt it. A backup host needs no
  secret at all.
- **Passphrase** (from a file or the environment, never argv): age's passphrase mode is
  whole-buffer only, so a passphrase never encrypts the data itself. Each backup gets a fresh
  random X25519 identity; the data is encrypted to it, and the identity is stored beside the
  data as ``key.age``, encrypted with the passphrase (scrypt). Memory stays flat, and by hand:
  ``age -d -o key.txt key.age`` (asks for the passphrase) then ``age -d -i key.txt data...``.

The manifest records recipients' fingerprints (a hash of the public key), never keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbtasks.backup.errors import BackupError, BackupUsageError
from dbtasks.backup.streams import Channel, Worker
from dbtasks.runners.base import ReadStream, WriteStream

KEY_FILE = "key.age"
SUFFIX = ".age"


def fingerprint(public_key: str) -> str:
    """A recipient's fingerprint: enough to tell keys apart, never the key itself."""
    return "sha256:" + hashlib.sha256(public_key.strip().encode()).hexdigest()[:32]


def _recipient(text: str) -> Any:
    import pyrage

    text = text.strip()
    try:
        if text.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(text)
        if text.startswith(("ssh-", "ecdsa-")):
            return pyrage.ssh.Recipient.from_str(text)
    except pyrage.RecipientError as exc:
        raise BackupUsageError(f"not a valid age or SSH public key: {text[:24]}...") from exc
    raise BackupUsageError(
        f"not an age recipient (age1...), an SSH public key, or a file of them: {text[:24]!r}"
    )


def parse_recipients(values: Sequence[str]) -> list[str]:
    """``--encrypt-to`` values: public keys, or files holding one per line (``#`` comments)."""
    keys: list[str] = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        path = Path(value).expanduser()
        if not value.startswith(("age1", "ssh-", "ecdsa-")) and path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            found = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
            if not found:
                raise BackupUsageError(f"recipients file {value!r} holds no public key")
            keys.extend(found)
        else:
            keys.append(value)
    for key in keys:
        _recipient(key)  # validate early, before anything is dumped
    return keys


@dataclass
class Encryption:
    """What a backup encrypts to: recipients' public keys and/or a passphrase-held identity."""

    recipients: list[str] = field(default_factory=list)
    passphrase: str | None = None
    #: The per-backup identity's recipient (passphrase mode), and that identity wrapped.
    key_recipient: str | None = None
    wrapped_key: bytes | None = None

    @classmethod
    def plan(cls, recipients: Sequence[str], passphrase: str | None) -> Encryption | None:
        """None when nothing asks for encryption."""
        if not recipients and not passphrase:
            return None
        plan = cls(list(recipients), passphrase)
        if passphrase:
            import pyrage

            identity = pyrage.x25519.Identity.generate()
            plan.key_recipient = str(identity.to_public())
            plan.wrapped_key = pyrage.passphrase.encrypt(
                (str(identity) + "\n").encode(), passphrase, armored=True
            )
        return plan

    @property
    def all_recipients(self) -> list[str]:
        return [*self.recipients, *([self.key_recipient] if self.key_recipient else [])]

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": "age",
            "recipients": [fingerprint(r) for r in self.recipients],
            "passphrase": self.passphrase is not None,
            "key_file": KEY_FILE if self.wrapped_key else None,
            "key_recipient": fingerprint(self.key_recipient) if self.key_recipient else None,
        }


@contextmanager
def encrypting(dest: WriteStream, encryption: Encryption) -> Iterator[WriteStream]:
    """A stream whose bytes reach ``dest`` age-encrypted. Ends the age stream on a clean exit."""
    import pyrage

    recipients = [_recipient(r) for r in encryption.all_recipients]
    channel = Channel()

    def run() -> None:
        try:
            pyrage.encrypt_io(channel, dest, recipients)
        except BaseException as exc:
            channel.fail(exc)
            raise

    worker = Worker(run, "dbtasks-encrypt").start()
    try:
        yield channel
    except BaseException as exc:
        channel.fail(exc)
        worker.join_quietly()
        raise
    channel.close()
    try:
        worker.join()
    except (pyrage.EncryptError, OSError) as exc:
        raise BackupError(f"encryption failed: {exc}") from exc


@dataclass
class Keys:
    """What a restore may decrypt with: identity files and/or a passphrase."""

    identity_files: list[Path] = field(default_factory=list)
    passphrase: str | None = None

    def identities(self, encryption: dict[str, Any], backup_dir: Path, label: str) -> list[Any]:
        """The identities to try on a backup whose manifest says ``encryption``."""
        import pyrage

        found: list[Any] = [identity for f in self.identity_files for identity in _load(f)]
        key_file = encryption.get("key_file")
        if key_file and self.passphrase:
            wrapped = _read(backup_dir / str(key_file), "the backup's key file")
            try:
                secret = pyrage.passphrase.decrypt(wrapped, self.passphrase)
            except pyrage.DecryptError as exc:
                raise BackupError(f"{label}: wrong passphrase") from exc
            found.append(pyrage.x25519.Identity.from_str(secret.decode().strip()))
        if not found:
            how = []
            if encryption.get("recipients"):
                how.append("--identity FILE (or DBTASKS_BACKUP_IDENTITY_FILE)")
            if key_file:
                how.append("--passphrase-file FILE (or DBTASKS_BACKUP_PASSPHRASE)")
            raise BackupError(f"{label} is encrypted: give {' or '.join(how) or 'a key'}")
        wanted = set(encryption.get("recipients") or []) | {encryption.get("key_recipient")}
        matches = any(fingerprint(str(i.to_public())) in wanted for i in found if _public(i))
        if not matches and all(_public(i) for i in found):
            raise BackupError(f"{label}: none of the given keys can decrypt it (wrong key)")
        return found


def _public(identity: Any) -> bool:
    """Whether an identity can tell its public key (X25519 can; SSH identities cannot here)."""
    return hasattr(identity, "to_public")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BackupError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from exc


def _load(path: Path) -> list[Any]:
    """Identities from an age identity file (``AGE-SECRET-KEY-1...`` lines) or an SSH key."""
    import pyrage

    data = _read(path, "identity file")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return [pyrage.ssh.Identity.from_buffer(data)]
        lines = data.decode().splitlines()
        keys = [ln.strip() for ln in lines if ln.strip().startswith("AGE-SECRET-KEY-")]
        if not keys:
            raise BackupUsageError(f"identity file {str(path)!r} holds no age secret key")
        return [pyrage.x25519.Identity.from_str(k) for k in keys]
    except (pyrage.IdentityError, UnicodeDecodeError, ValueError) as exc:
        raise BackupUsageError(f"identity file {str(path)!r} is not readable as a key") from exc


@contextmanager
def decrypting(source: ReadStream, identities: list[Any], label: str) -> Iterator[ReadStream]:
    """``source`` decrypted, as a stream. A wrong key fails on the first read."""
    import pyrage

    channel = Channel()

    def run() -> None:
        try:
            pyrage.decrypt_io(source, channel, identities)
        except pyrage.DecryptError as exc:
            channel.fail(BackupError(f"{label}: cannot decrypt ({exc})"))
        except OSError as exc:
            # pyrage reports a failed chunk authentication as a bare "decryption error".
            error = BackupError(f"{label}: encrypted data is corrupt or truncated ({exc})")
            channel.fail(error)
        except BaseException as exc:  # noqa: BLE001  # handed to the reading thread
            channel.fail(exc)
        else:
            channel.close()

    worker = Worker(run, "dbtasks-decrypt").start()
    try:
        yield channel
    except BaseException as exc:
        channel.fail(exc)
        worker.join_quietly()
        raise
    worker.join_quietly()
