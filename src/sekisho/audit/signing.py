"""The organisation's Ed25519 signing key: audit checkpoints, prune anchors and provenance manifests.

The key lives in one PEM file (settings.audit.key_path), created on first use with 0600
permissions. Whoever can read it can forge checkpoints, so it belongs on a different volume (or
owner) from the audit database in a real deployment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sekisho.errors import SekishoError


class SigningKeyError(SekishoError):
    """The signing key file cannot be read or created; the message names the file."""


def canonical_json(value: Any) -> bytes:
    """The one byte form that is hashed and signed: sorted keys, no spaces, UTF-8 (not \\u escapes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_or_create_key(path: str | Path) -> Ed25519PrivateKey:
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # One temporary name per process and thread: threads of one server may race here too.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fp:
                fp.write(pem)
                fp.flush()
                os.fsync(fp.fileno())
            # link() publishes the complete file atomically and fails if another process won the
            # race, so nobody ever reads a half-written key and exactly one key is used.
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise SigningKeyError(f"{path}: cannot create the signing key: {exc.strerror}") from None
        finally:
            tmp.unlink(missing_ok=True)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise SigningKeyError(f"{path}: not a readable Ed25519 private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: the key is not an Ed25519 key")
    return key


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def sign(key: Ed25519PrivateKey, payload: Any) -> str:
    return base64.b64encode(key.sign(canonical_json(payload))).decode("ascii")


def _strict_b64(text: str) -> bytes:
    """Base64 that only one string encodes: the unused low bits of the last character are free
    in lenient decoders, which would let an altered byte still verify."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    return raw


def signature_valid(public_b64: str, signature_b64: str, payload: Any) -> bool:
    try:
        public = Ed25519PublicKey.from_public_bytes(_strict_b64(public_b64))
        public.verify(_strict_b64(signature_b64), canonical_json(payload))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
