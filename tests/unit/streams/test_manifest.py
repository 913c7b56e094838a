from __future__ import annotations

import pytest

from streams.errors import SignatureError
from streams.manifest import Manifest, onnx_digest, sign_manifest, verify_update

ONNX = b"\x08\x07fake-onnx-bytes"
KEY = b"k" * 32


def _manifest() -> Manifest:
    return Manifest(
        name="sizer", version="v1", parent=None, created_us=1, feature_spec_version="sizer-v1",
        feature_spec_digest="d", feature_names=["a", "b"], obs_mean=[0.0, 1.0], obs_std=[1.0, 2.0],
        onnx_sha256=onnx_digest(ONNX),
    )  # fmt: skip


def test_verifies_when_untouched() -> None:
    text, sig = sign_manifest(_manifest(), KEY)
    assert verify_update(text, ONNX, sig, KEY) == _manifest()


@pytest.mark.parametrize("position", [0, 5, -1])
def test_one_changed_onnx_byte_fails(position: int) -> None:
    text, sig = sign_manifest(_manifest(), KEY)
    tampered = bytearray(ONNX)
    tampered[position] ^= 0x01
    with pytest.raises(SignatureError) as info:
        verify_update(text, bytes(tampered), sig, KEY)
    assert info.value.reason == "checksum_mismatch"


def test_changed_manifest_wrong_key_and_unsigned_fail() -> None:
    text, sig = sign_manifest(_manifest(), KEY)
    with pytest.raises(SignatureError) as info:
        verify_update(text.replace('"v1"', '"v2"'), ONNX, sig, KEY)
    assert info.value.reason == "bad_signature"
    with pytest.raises(SignatureError) as info:
        verify_update(text, ONNX, sig, b"other key")
    assert info.value.reason == "bad_signature"
    with pytest.raises(SignatureError) as info:
        verify_update(text, ONNX, "", KEY)
    assert info.value.reason == "unsigned"
