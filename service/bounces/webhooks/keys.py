"""The SendGrid verification key, read where both the settings check and the webhook need it;
it imports nothing of ours, so `service.settings` can use it without an import cycle."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


@lru_cache(maxsize=4)
def load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its setting; ValueError saying what is wrong."""
    try:
        if value.lstrip().startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(value.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(value.split()), validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ValueError("expected the verification key SendGrid shows (base64 DER, or PEM)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("expected an ECDSA P-256 public key")
    return key
