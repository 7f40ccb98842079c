"""Makes an Azure Key Vault key transfer blob (key_hsm) independently of ccr, with Python's
`cryptography`: RSA-OAEP (SHA-1, SHA-256 or SHA-384, by the algorithm name) of a fresh AES-256
key to the given RSA public key, followed by the target key wrapped with AES key wrap with
padding (RFC 5649).

usage: akv_wrap.py PUBLIC_KEY_PEM ALG TARGET_HEX [SALT_HEX LABEL]
prints: the key_hsm value (base64url, no padding); with SALT_HEX and LABEL it also prints, on a
second line, HKDF-SHA256(d of the PKCS#8 RSA private key TARGET, salt, label) in hex, as
Microsoft's confidential-sidecar importkey tool derives an RSA-HSM key's symmetric key.
"""

import base64
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main() -> None:
    pub = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
    alg = sys.argv[2]
    target = bytes.fromhex(sys.argv[3])
    h = {"CKM_RSA_AES_KEY_WRAP": hashes.SHA1, "RSA_AES_KEY_WRAP_256": hashes.SHA256,
         "RSA_AES_KEY_WRAP_384": hashes.SHA384}[alg]
    aes = os.urandom(32)
    rsa_part = pub.encrypt(aes, padding.OAEP(mgf=padding.MGF1(algorithm=h()), algorithm=h(), label=None))
    ct = rsa_part + aes_key_wrap_with_padding(aes, target)
    blob = {"schema_version": "1.0.0",
            "header": {"kid": "runtime-transfer-key", "alg": "dir", "enc": alg},
            "ciphertext": b64url(ct), "generator": "ccr test (python cryptography)"}
    print(b64url(json.dumps(blob).encode()))
    if len(sys.argv) > 5:
        key = serialization.load_der_private_key(target, password=None)
        d = key.private_numbers().d
        d_bytes = d.to_bytes((d.bit_length() + 7) // 8, "big")
        okm = HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes.fromhex(sys.argv[4]),
                   info=sys.argv[5].encode()).derive(d_bytes)
        print(okm.hex())


if __name__ == "__main__":
    main()
