"""make_dev_certs: what the certificates say (the TLS tests show they work)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from trouper._certs import make_dev_certs
from trouper._errors import ConfigurationError


def test_node_certificates_are_for_both_roles_and_all_hosts(tmp_path: Path) -> None:
    directory = make_dev_certs(tmp_path, names=("n1",), hosts=("10.0.0.1", "node.local"))
    assert directory == tmp_path
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((tmp_path / "n1.pem").read_bytes())
    assert cert.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["node.local"]
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"


@pytest.mark.parametrize(
    "kwargs",
    [{"names": ()}, {"names": ("../evil",)}, {"names": ("ca",)}, {"days": 0}, {"hosts": ()}],
)
def test_bad_arguments_are_configuration_errors(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        make_dev_certs(tmp_path, **kwargs)  # type: ignore[arg-type]
