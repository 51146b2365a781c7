"""Certificate and key files: tls://, wss:// and quic:// read them with one
loader (transports._pem), so the same files work on all three, over real
connections, and the same bad files fail with the same ConfigurationError."""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trustme
from cryptography.hazmat.primitives import serialization
from transport_helpers import Pki, echo, receive_exactly, serving

from trouper._errors import ConfigurationError
from trouper.transports import (
    QuicTransport,
    TLSConfig,
    TlsTransport,
    Transport,
    WssTransport,
    parse_address,
)
from trouper.transports._pem import load_identity

TRANSPORTS: dict[str, Transport] = {
    "tls": TlsTransport(),
    "wss": WssTransport(),
    "quic": QuicTransport(handshake_timeout=5.0),
}
LISTEN = {"tls": "tls://127.0.0.1:0", "wss": "wss://127.0.0.1:0/p", "quic": "quic://127.0.0.1:0"}
# Nothing listens there: a config error must come before any network I/O.
NOWHERE = {"tls": "tls://127.0.0.1:9", "wss": "wss://127.0.0.1:9/p", "quic": "quic://127.0.0.1:9"}

# What `openssl ecparam -genkey` writes before a P-256 key; loaders skip it.
EC_PARAMETERS = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
# OpenSSL's trust settings after a TRUSTED CERTIFICATE's DER: "trusted for serverAuth".
TRUST_AUX = bytes.fromhex("300c300a06082b06010505070301")


def pem_key(leaf: trustme.LeafCert, form: str, password: bytes | None = None) -> bytes:
    """The leaf's key as ``form``: "pkcs8", or "traditional" (PKCS#1 for RSA,
    SEC1 for EC), encrypted with ``password`` if given."""
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if password is not None:
        encryption = serialization.BestAvailableEncryption(password)
    formats = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
    }
    return key.private_bytes(serialization.Encoding.PEM, formats[form], encryption)


def chain_pem(leaf: trustme.LeafCert) -> bytes:
    return b"".join(blob.bytes() for blob in leaf.cert_chain_pems)  # leaf, intermediate


def trusted_pem(leaf: trustme.LeafCert) -> bytes:
    """The leaf as OpenSSL's TRUSTED CERTIFICATE (``openssl x509 -trustout``)."""
    body = leaf.cert_chain_pems[0].bytes().split(b"\n")[1:-2]
    data = base64.b64decode(b"".join(body)) + TRUST_AUX
    lines = [base64.b64encode(data[i : i + 48]) for i in range(0, len(data), 48)]
    return b"\n".join(
        [b"-----BEGIN TRUSTED CERTIFICATE-----", *lines, b"-----END TRUSTED CERTIFICATE-----\n"]
    )


class Files:
    """Writes PEM files for leaves issued by an intermediate under ``pki``'s CA
    (so a peer that trusts only the root needs the chain to verify)."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.intermediate = pki.ca.create_child_ca()
        self.dir = pki.dir

    def leaf(self, key_type: trustme.KeyType = trustme.KeyType.ECDSA) -> trustme.LeafCert:
        return self.intermediate.issue_cert("127.0.0.1", "localhost", key_type=key_type)

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path

    def config(self, certfile: Path | None, keyfile: Path | None) -> TLSConfig:
        return TLSConfig(certfile=certfile, keyfile=keyfile, cafile=self.pki.cafile)


@pytest.fixture
def files(pki: Pki) -> Files:
    return Files(pki)


Layout = Callable[[Files], tuple[Path, Path | None]]


def combined_as_both(f: Files) -> tuple[Path, Path | None]:
    leaf = f.leaf()
    path = f.write("combined.pem", chain_pem(leaf) + leaf.private_key_pem.bytes())
    return path, path


def combined_keyfile_none(f: Files) -> tuple[Path, Path | None]:
    leaf = f.leaf()
    return f.write("combined.pem", chain_pem(leaf) + pem_key(leaf, "pkcs8")), None


def combined_key_first(f: Files) -> tuple[Path, Path | None]:
    leaf = f.leaf()
    return f.write("combined.pem", leaf.private_key_and_cert_chain_pem.bytes()), None


def combined_rsa_pkcs1_as_both(f: Files) -> tuple[Path, Path | None]:
    leaf = f.leaf(trustme.KeyType.RSA)
    key = pem_key(leaf, "traditional")
    assert key.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    path = f.write("combined.pem", chain_pem(leaf) + key)
    return path, path


def separate_ec_sec1(f: Files) -> tuple[Path, Path | None]:
    leaf = f.leaf()
    key = pem_key(leaf, "traditional")
    assert key.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    return f.write("cert.pem", chain_pem(leaf)), f.write("key.pem", key)


def separate_ec_sec1_with_parameters(f: Files) -> tuple[Path, Path | None]:
    leaf = f.leaf()
    key = EC_PARAMETERS + pem_key(leaf, "traditional")
    return f.write("cert.pem", chain_pem(leaf)), f.write("key.pem", key)


def separate_ec_pkcs8(f: Files) -> tuple[Path, Path | None]:
    leaf = f.leaf()
    return f.write("cert.pem", chain_pem(leaf)), f.write("key.pem", pem_key(leaf, "pkcs8"))


def separate_rsa_pkcs1(f: Files) -> tuple[Path, Path | None]:
    leaf = f.leaf(trustme.KeyType.RSA)
    key = pem_key(leaf, "traditional")
    return f.write("cert.pem", chain_pem(leaf)), f.write("key.pem", key)


def separate_rsa_pkcs8(f: Files) -> tuple[Path, Path | None]:
    leaf = f.leaf(trustme.KeyType.RSA)
    return f.write("cert.pem", chain_pem(leaf)), f.write("key.pem", pem_key(leaf, "pkcs8"))


def keyfile_wins_over_a_key_in_certfile(f: Files) -> tuple[Path, Path | None]:
    leaf, stray = f.leaf(), f.leaf()  # as with ssl: keyfile given, certfile's key unused
    certfile = f.write("cert.pem", chain_pem(leaf) + stray.private_key_pem.bytes())
    return certfile, f.write("key.pem", leaf.private_key_pem.bytes())


def trusted_certificate_leaf(f: Files) -> tuple[Path, Path | None]:
    leaf = f.leaf()  # ssl has always taken `openssl x509 -trustout` output
    certfile = f.write("cert.pem", trusted_pem(leaf) + leaf.cert_chain_pems[1].bytes())
    return certfile, f.write("key.pem", leaf.private_key_pem.bytes())


LAYOUTS: list[Layout] = [
    combined_as_both,
    combined_keyfile_none,
    combined_key_first,
    combined_rsa_pkcs1_as_both,
    separate_ec_sec1,
    separate_ec_sec1_with_parameters,
    separate_ec_pkcs8,
    separate_rsa_pkcs1,
    separate_rsa_pkcs8,
    keyfile_wins_over_a_key_in_certfile,
    trusted_certificate_leaf,
]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.__name__)
@pytest.mark.parametrize("scheme", list(TRANSPORTS))
async def test_every_layout_works_on_every_transport(
    files: Files, scheme: str, layout: Layout
) -> None:
    """Both ends use the layout (mutual TLS), and trust only the root CA: the
    intermediate in certfile has to be sent for either to be accepted."""
    config = files.config(*layout(files))
    transport = TRANSPORTS[scheme]
    with trio.fail_after(20):
        async with serving(transport, LISTEN[scheme], echo, config) as bound:
            stream = await transport.connect(bound, tls=config)
            payload = f"hello over {scheme}".encode()
            async with stream, trio.open_nursery() as nursery:
                nursery.start_soon(stream.send_all, payload)  # concurrently: the echo pushes back
                assert await receive_exactly(stream, len(payload)) == payload


def test_the_loader_splits_leaf_chain_and_key(files: Files) -> None:
    certfile, keyfile = combined_as_both(files)
    identity = load_identity(certfile, keyfile)
    assert identity is not None
    pem = serialization.Encoding.PEM
    assert [c.public_bytes(pem) for c in identity.chain] == [files.intermediate.cert_pem.bytes()]
    assert identity.certfile == identity.keyfile == str(certfile)
    assert load_identity(None, None) is None


# -- failures: each writes files and says (certfile, keyfile, the file the
# -- error names, a regex for the problem)

Case = tuple[Path | None, Path | None, Path, str]
Problem = Callable[[Files], Case]


def missing_certfile(f: Files) -> Case:
    return f.dir / "missing.pem", None, f.dir / "missing.pem", "No such file or directory"


def missing_keyfile(f: Files) -> Case:
    certfile = f.write("cert.pem", chain_pem(f.leaf()))
    return certfile, f.dir / "missing.pem", f.dir / "missing.pem", "No such file or directory"


def certfile_is_a_directory(f: Files) -> Case:
    return f.dir, None, f.dir, "Is a directory"


def empty_certfile(f: Files) -> Case:
    path = f.write("empty.pem", b"")
    return path, None, path, "the file is empty"


def empty_keyfile(f: Files) -> Case:
    certfile, keyfile = f.write("cert.pem", chain_pem(f.leaf())), f.write("key.pem", b"\n")
    return certfile, keyfile, keyfile, "the file is empty"


def no_certificate(f: Files) -> Case:
    path = f.write("key.pem", f.leaf().private_key_pem.bytes())
    return path, None, path, "no PEM certificate in it"


def der_certificate(f: Files) -> Case:
    leaf = f.leaf()
    der = base64.b64decode(b"".join(leaf.cert_chain_pems[0].bytes().split(b"\n")[1:-2]))
    path = f.write("cert.der", der)
    return path, f.write("key.pem", leaf.private_key_pem.bytes()), path, "no PEM certificate"


def no_key_in_certfile(f: Files) -> Case:
    path = f.write("cert.pem", chain_pem(f.leaf()))
    return path, None, path, r"no PEM private key in it \(append the key"


def no_key_in_keyfile(f: Files) -> Case:
    leaf = f.leaf()
    certfile, keyfile = f.write("cert.pem", chain_pem(leaf)), f.write("key.pem", chain_pem(leaf))
    return certfile, keyfile, keyfile, "no PEM private key in it$"


def key_does_not_match(f: Files) -> Case:
    certfile = f.write("cert.pem", chain_pem(f.leaf()))
    keyfile = f.write("key.pem", f.leaf().private_key_pem.bytes())  # another leaf's
    return certfile, keyfile, keyfile, f"does not match the certificate in {certfile}"


def combined_key_does_not_match(f: Files) -> Case:
    path = f.write("combined.pem", chain_pem(f.leaf()) + f.leaf().private_key_pem.bytes())
    return path, path, path, "does not match the certificate"


def encrypted_pkcs8_key(f: Files) -> Case:
    leaf = f.leaf()
    keyfile = f.write("key.pem", pem_key(leaf, "pkcs8", password=b"secret"))
    assert keyfile.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    return f.write("cert.pem", chain_pem(leaf)), keyfile, keyfile, "is encrypted"


def encrypted_traditional_key_in_combined(f: Files) -> Case:
    leaf = f.leaf(trustme.KeyType.RSA)
    key = pem_key(leaf, "traditional", password=b"secret")
    assert b"Proc-Type: 4,ENCRYPTED" in key
    path = f.write("combined.pem", chain_pem(leaf) + key)
    return path, None, path, "is encrypted, and trouper takes no key passwords"


def corrupt_certificate(f: Files) -> Case:
    leaf = f.leaf()
    junk = b"-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    path = f.write("cert.pem", junk + chain_pem(leaf))
    return path, f.write("key.pem", leaf.private_key_pem.bytes()), path, "the certificate is not"


def corrupt_chain_certificate(f: Files) -> Case:
    leaf = f.leaf()
    junk = b"-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    path = f.write("cert.pem", chain_pem(leaf) + junk)
    keyfile = f.write("key.pem", leaf.private_key_pem.bytes())
    return path, keyfile, path, "chain certificate 2 is not valid"


def corrupt_key(f: Files) -> Case:
    junk = b"-----BEGIN PRIVATE KEY-----\nTm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    keyfile = f.write("key.pem", junk)
    certfile = f.write("cert.pem", chain_pem(f.leaf()))
    return certfile, keyfile, keyfile, "not a valid private key"


PROBLEMS: list[Problem] = [
    missing_certfile,
    missing_keyfile,
    certfile_is_a_directory,
    empty_certfile,
    empty_keyfile,
    no_certificate,
    der_certificate,
    no_key_in_certfile,
    no_key_in_keyfile,
    key_does_not_match,
    combined_key_does_not_match,
    encrypted_pkcs8_key,
    encrypted_traditional_key_in_combined,
    corrupt_certificate,
    corrupt_chain_certificate,
    corrupt_key,
]


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda problem: problem.__name__)
async def test_every_problem_is_the_same_error_on_every_transport(
    files: Files, problem: Problem
) -> None:
    certfile, keyfile, named, what = problem(files)
    config = files.config(certfile, keyfile)
    messages: dict[str, str] = {}
    with trio.fail_after(10):
        for scheme, transport in TRANSPORTS.items():
            with pytest.raises(ConfigurationError) as dialling:
                await transport.connect(parse_address(NOWHERE[scheme]), tls=config)
            with pytest.raises(ConfigurationError) as listening:
                await transport.serve(parse_address(LISTEN[scheme]), echo, tls=config)
            messages[f"{scheme} connect"] = str(dialling.value)
            messages[f"{scheme} serve"] = str(listening.value)
    assert len(set(messages.values())) == 1, messages
    message = messages["tls connect"]
    assert message.startswith("cannot load TLS ") and f" {named}: " in message
    assert re.search(what, message), message


async def test_a_keyfile_without_a_certfile_is_the_same_error_everywhere(files: Files) -> None:
    keyfile = files.write("key.pem", files.leaf().private_key_pem.bytes())
    config = files.config(None, keyfile)
    with trio.fail_after(10):
        for scheme, transport in TRANSPORTS.items():
            with pytest.raises(ConfigurationError, match="keyfile is set but certfile is not"):
                await transport.connect(parse_address(NOWHERE[scheme]), tls=config)


def test_ssl_never_prompts_for_a_password(files: Files) -> None:
    """A key that became encrypted after it was checked: ssl reads the file
    again, and its password callback refuses instead of asking the terminal."""
    leaf = files.leaf()
    certfile, keyfile = files.write("cert.pem", chain_pem(leaf)), files.write("key.pem", b"")
    keyfile.write_bytes(pem_key(leaf, "pkcs8"))
    identity = load_identity(certfile, keyfile)
    assert identity is not None
    keyfile.write_bytes(pem_key(leaf, "pkcs8", password=b"secret"))
    with pytest.raises(ConfigurationError, match="is encrypted"):
        identity.load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
