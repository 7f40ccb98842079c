"""Seal or open one file with Google Tink's streaming AEAD (AES256_GCM_HKDF_1MB) from a raw
32-byte key, for ccr's interop tests.

usage: tink_interop.py seal|open KEYFILE ASSOCIATED_DATA INPUT OUTPUT
"""
import sys

import tink
from tink import cleartext_keyset_handle, streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

SEGMENT = 1 << 20


def primitive(raw: bytes):
    key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey(
        version=0,
        params=aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingParams(
            ciphertext_segment_size=SEGMENT,
            derived_key_size=32,
            hkdf_hash_type=common_pb2.SHA256,
        ),
        key_value=raw,
    )
    keyset = tink_pb2.Keyset(
        primary_key_id=1,
        key=[
            tink_pb2.Keyset.Key(
                key_data=tink_pb2.KeyData(
                    type_url="type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey",
                    value=key.SerializeToString(),
                    key_material_type=tink_pb2.KeyData.SYMMETRIC,
                ),
                status=tink_pb2.ENABLED,
                key_id=1,
                output_prefix_type=tink_pb2.RAW,
            )
        ],
    )
    streaming_aead.register()
    handle = cleartext_keyset_handle.from_keyset(keyset)
    return handle.primitive(streaming_aead.StreamingAead)


def main() -> int:
    mode, keyfile, ad, src, dst = sys.argv[1:6]
    raw = open(keyfile, "rb").read()
    assert len(raw) == 32, "key must be 32 bytes"
    p = primitive(raw)
    if mode == "seal":
        data = open(src, "rb").read()
        with open(dst, "wb") as out, p.new_encrypting_stream(out, ad.encode()) as s:
            s.write(data)
    elif mode == "open":
        with open(src, "rb") as inp, p.new_decrypting_stream(inp, ad.encode()) as s:
            data = s.read()
        open(dst, "wb").write(data)
    else:
        raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
