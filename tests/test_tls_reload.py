"""Certificate rotation: ``node.reload_tls()`` and SIGHUP for ``trouper node``.

A reload swaps the certificates used for *new* connections. The tests tell
them apart by the fingerprint of the certificate a fresh connection sees,
and show that a live link survives by keeping a stream open across the
reload (a dropped and redialled link would break it).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes

import trouper
from trouper import TLSConfig
from trouper._certs import make_dev_certs
from trouper.transports import TLSCredentials, get_transport, parse_address, server_certificate

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from cluster_actors import Echo, Numbers, Ping  # noqa: E402

COOKIE = b"reload-cookie"
SCHEMES = ["tls", "quic"]


def file_fingerprint(path: Path) -> str:
    return x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA256()).hex()


async def seen_fingerprint(url: str, tls: TLSConfig | TLSCredentials) -> str:
    """The SHA-256 of the certificate a new connection to ``url`` is shown."""
    address = parse_address(url)
    failed: trouper.TrouperError | None = None
    der: bytes | None = None
    async with trio.open_nursery() as nursery:  # quic://: the connection's tasks
        try:
            stream = await get_transport(address.scheme).connect(address, tls=tls, nursery=nursery)
        except trouper.TrouperError as exc:
            failed = exc
        else:
            der = server_certificate(stream)
            await trio.aclose_forcefully(stream)
    if failed is not None:
        raise failed
    assert der is not None
    return hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize("scheme", [*SCHEMES, "wss"])
async def test_reload_reads_the_files_again_and_keeps_live_links(
    tmp_path: Path, scheme: str
) -> None:
    certs = make_dev_certs(tmp_path, ["a", "b", "probe"])
    probe = TLSConfig.from_dir(certs, "probe")
    listen = f"{scheme}://127.0.0.1:0" + ("/trouper" if scheme == "wss" else "")
    with trio.fail_after(40):
        async with (
            trouper.open_node(
                "a", listen=listen, cookie=COOKIE, tls=TLSConfig.from_dir(certs, "a")
            ) as a,
            trouper.open_node(
                "b", seeds=a.addresses, cookie=COOKIE, tls=TLSConfig.from_dir(certs, "b")
            ) as b,
        ):
            (url,) = a.addresses
            old = file_fingerprint(certs / "a.pem")
            assert await seen_fingerprint(url, probe) == old
            await a.spawn(Echo, 1, name="echo")
            ref = await b.lookup("echo", timeout=10)
            async with ref.stream(Numbers(200), window=4) as items:
                before = [await items.__anext__() for _ in range(10)]
                # Rotate a's certificate in place (same CA, same file names).
                make_dev_certs(certs, ["a"], keep_ca=True)
                new = file_fingerprint(certs / "a.pem")
                assert new != old
                assert await a.reload_tls() == new
                # The live link carries on: the stream opened before the
                # reload finishes on the same connection.
                rest = [i async for i in items]
            assert before + rest == list(range(200))
            assert await ref.ask(Ping(1)) == 2
            # A new connection is shown the new certificate.
            assert await seen_fingerprint(url, probe) == new
            # ...and a node that dials now joins through it.
            async with trouper.open_node(
                "c", cookie=COOKIE, tls=TLSConfig.from_dir(certs, "probe")
            ) as c:
                assert await c.connect(url, timeout=10) == "a"
                assert await (await c.lookup("echo", timeout=10)).ask(Ping(2)) == 3


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_bad_file_fails_the_reload_and_keeps_the_old_certificate(
    tmp_path: Path, scheme: str
) -> None:
    certs = make_dev_certs(tmp_path, ["a", "probe"])
    probe = TLSConfig.from_dir(certs, "probe")
    with trio.fail_after(30):
        async with trouper.open_node(
            "a",
            listen=f"{scheme}://127.0.0.1:0",
            cookie=COOKIE,
            tls=TLSConfig.from_dir(certs, "a"),
        ) as a:
            (url,) = a.addresses
            old = file_fingerprint(certs / "a.pem")
            (certs / "a.pem").write_text("not a certificate\n")
            with pytest.raises(trouper.ConfigurationError, match=r"a\.pem: no PEM certificate"):
                await a.reload_tls()
            assert await seen_fingerprint(url, probe) == old
            # A key that does not match its certificate is refused too.
            make_dev_certs(tmp_path / "other", ["a"])
            (certs / "a.pem").write_bytes((tmp_path / "other" / "a.pem").read_bytes())
            with pytest.raises(trouper.ConfigurationError, match="does not match"):
                await a.reload_tls()
            assert await seen_fingerprint(url, probe) == old
            # A config that would leave the listener without a certificate.
            with pytest.raises(trouper.ConfigurationError, match="no certificate"):
                await a.reload_tls(TLSConfig(cafile=certs / "ca.pem"))
            assert await seen_fingerprint(url, probe) == old


async def test_reload_with_a_new_config(tmp_path: Path) -> None:
    first = make_dev_certs(tmp_path / "first", ["a"])
    second = make_dev_certs(tmp_path / "second", ["a", "probe"])
    probe = TLSConfig.from_dir(second, "probe")
    with trio.fail_after(30):
        async with trouper.open_node(
            "a", listen="tls://127.0.0.1:0", cookie=COOKIE, tls=TLSConfig.from_dir(first, "a")
        ) as a:
            with pytest.raises(trouper.HandshakeFailed, match="certificate verify failed"):
                await seen_fingerprint(a.addresses[0], probe)  # first's CA: untrusted
            new = await a.reload_tls(TLSConfig.from_dir(second, "a"))
            assert new == file_fingerprint(second / "a.pem")
            assert await seen_fingerprint(a.addresses[0], probe) == new
            with pytest.raises(trouper.ConfigurationError, match=r"must be a trouper\.TLSConfig"):
                await a.reload_tls("second/a.pem")


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_dev_mode_reload_makes_a_new_ephemeral_certificate(scheme: str) -> None:
    dev = TLSConfig.dev()
    with trio.fail_after(30):
        async with (
            trouper.open_node("a", listen=f"{scheme}://127.0.0.1:0", cookie=COOKIE, tls=dev) as a,
            trouper.open_node("b", seeds=a.addresses, cookie=COOKIE, tls=dev) as b,
        ):
            (url,) = a.addresses
            probe = TLSCredentials(dev)
            old = await seen_fingerprint(url, probe)
            await a.spawn(Echo, 1, name="echo")
            ref = await b.lookup("echo", timeout=10)
            new = await a.reload_tls()
            assert new is not None and new != old
            assert await seen_fingerprint(url, probe) == new
            assert await ref.ask(Ping(5)) == 6  # the link made before
            # The bound handshake runs on the new certificate.
            async with trouper.open_node("c", cookie=COOKIE, tls=dev) as c:
                assert await c.connect(url, timeout=10) == "a"
                assert await (await c.lookup("echo", timeout=10)).ask(Ping(2)) == 3


async def test_reload_without_tls_is_a_clear_error() -> None:
    with trio.fail_after(10):
        async with trouper.open_node("plain", listen="tcp://127.0.0.1:0", cookie=COOKIE) as node:
            with pytest.raises(trouper.ConfigurationError, match="no TLS configuration to reload"):
                await node.reload_tls()
        async with trouper.open_node("local") as node:
            with pytest.raises(trouper.ConfigurationError, match="needed to use TLS"):
                await node.reload_tls()


async def _line(stdout: trio.abc.ReceiveStream, buffer: bytearray) -> dict[str, Any]:
    while b"\n" not in buffer:
        chunk = await stdout.receive_some(4096)
        assert chunk, "the node process exited"
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    parsed: dict[str, Any] = json.loads(line)
    return parsed


async def test_sighup_reloads_a_trouper_node_process(tmp_path: Path) -> None:
    certs = make_dev_certs(tmp_path / "certs", ["n", "probe"])
    probe = TLSConfig(cafile=certs / "ca.pem")  # verifies n's certificate against the CA
    cookie_file = tmp_path / "cookie"
    cookie_file.write_bytes(COOKIE)
    os.chmod(cookie_file, 0o600)
    command = [sys.executable, "-m", "trouper", "node", "--name", "n"]
    command += ["--listen", "tls://127.0.0.1:0", "--cookie-file", str(cookie_file)]
    command += ["--tls-cert", str(certs / "n.pem"), "--tls-key", str(certs / "n-key.pem")]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    buffer = bytearray()
    try:
        with trio.fail_after(60):
            ready = await _line(process.stdout, buffer)
            (url,) = ready["addresses"]
            old = file_fingerprint(certs / "n.pem")
            assert await seen_fingerprint(url, probe) == old

            make_dev_certs(certs, ["n"], keep_ca=True)
            new = file_fingerprint(certs / "n.pem")
            process.send_signal(signal.SIGHUP)
            assert await _line(process.stdout, buffer) == {"tls_reloaded": new}
            assert await seen_fingerprint(url, probe) == new

            (certs / "n-key.pem").write_text("")
            process.send_signal(signal.SIGHUP)
            failed = await _line(process.stdout, buffer)
            assert "n-key.pem" in failed["tls_reload_error"]
            assert "empty" in failed["tls_reload_error"]
            assert process.poll() is None  # still running, on the certificate it had
            assert await seen_fingerprint(url, probe) == new

            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


def test_trouper_certs_keep_ca_rotates_a_leaf_under_the_same_ca(tmp_path: Path) -> None:
    from trouper.cli import main

    main(["certs", str(tmp_path), "--name", "a"])
    ca, old = (tmp_path / "ca.pem").read_bytes(), file_fingerprint(tmp_path / "a.pem")
    main(["certs", str(tmp_path), "--name", "a", "--keep-ca"])
    assert (tmp_path / "ca.pem").read_bytes() == ca
    assert file_fingerprint(tmp_path / "a.pem") != old
    issuer = x509.load_pem_x509_certificate(ca)
    leaf = x509.load_pem_x509_certificate((tmp_path / "a.pem").read_bytes())
    leaf.verify_directly_issued_by(issuer)  # raises if the new leaf is not from that CA
    main(["certs", str(tmp_path), "--name", "a"])
    assert (tmp_path / "ca.pem").read_bytes() != ca  # without --keep-ca: a new CA
