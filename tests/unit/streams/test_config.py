"""Configuration: kubeconfig contexts and credentials, the in-cluster service account, and
token rotation, all through the `kubernetes` package's loaders into fresh objects."""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

import pytest
import trio
import yaml

from rxkube.streams import (
    ConfigError,
    KubeconfigCredentials,
    StaticToken,
    TokenFile,
    load_config,
    load_incluster_config,
    load_kubeconfig,
)

CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def _write_kubeconfig(path: Path, users: list[dict[str, object]], **extra: object) -> Path:
    doc: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "clusters": [
            {
                "name": "dev-cluster",
                "cluster": {
                    "server": "https://dev.example:6443/",
                    "certificate-authority-data": base64.b64encode(CA_PEM).decode(),
                },
            },
            {"name": "lab-cluster", "cluster": {"server": "http://127.0.0.1:8001"}},
            {
                "name": "insecure-cluster",
                "cluster": {"server": "https://10.1.2.3", "insecure-skip-tls-verify": True},
            },
        ],
        "contexts": [
            {"name": "dev", "context": {"cluster": "dev-cluster", "user": "dev-user"}},
            {
                "name": "lab",
                "context": {"cluster": "lab-cluster", "user": "lab-user", "namespace": "apps"},
            },
            {"name": "insecure", "context": {"cluster": "insecure-cluster", "user": "dev-user"}},
        ],
        "users": users,
        **extra,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _rotate(path: Path, content: str) -> None:
    """Replace a file atomically, as the kubelet does (new inode)."""
    tmp = path.with_suffix(".new")
    tmp.write_text(content)
    os.replace(tmp, path)


async def test_current_context_with_static_token_and_ca_data(tmp_path: Path) -> None:
    kc = _write_kubeconfig(
        tmp_path / "config",
        [{"name": "dev-user", "user": {"token": "s3cret"}}, {"name": "lab-user", "user": {}}],
    )
    config = load_kubeconfig(kc)
    assert config.server == "https://dev.example:6443"
    assert config.context == "dev"
    assert config.namespace == "default"  # the context names none
    assert config.verify is True
    assert config.ca_file is not None
    assert await trio.Path(config.ca_file).read_bytes() == CA_PEM
    assert isinstance(config.token_source, StaticToken)
    assert await config.token_source.authorization() == "Bearer s3cret"
    assert "s3cret" not in repr(config)


async def test_named_context_and_its_namespace(tmp_path: Path) -> None:
    kc = _write_kubeconfig(
        tmp_path / "config",
        [{"name": "dev-user", "user": {"token": "a"}}, {"name": "lab-user", "user": {}}],
    )
    config = load_kubeconfig(kc, context="lab")
    assert (config.server, config.namespace, config.context) == (
        "http://127.0.0.1:8001",
        "apps",
        "lab",
    )
    assert config.token_source is None
    assert config.ca_file is None  # plain http: no TLS material is loaded


def test_insecure_skip_tls_verify(tmp_path: Path) -> None:
    kc = _write_kubeconfig(tmp_path / "config", [{"name": "dev-user", "user": {"token": "a"}}])
    assert load_kubeconfig(kc, context="insecure").verify is False


def test_client_certificate_files_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "me.crt").write_text("CERT")
    (tmp_path / "pki" / "me.key").write_text("KEY")
    kc = _write_kubeconfig(
        tmp_path / "config",
        [
            {
                "name": "dev-user",
                "user": {"client-certificate": "pki/me.crt", "client-key": "pki/me.key"},
            }
        ],
    )
    config = load_kubeconfig(kc)
    assert config.client_cert_file == str(tmp_path / "pki" / "me.crt")
    assert config.client_key_file == str(tmp_path / "pki" / "me.key")
    assert config.token_source is None


def test_client_certificate_data_is_written_to_files(tmp_path: Path) -> None:
    kc = _write_kubeconfig(
        tmp_path / "config",
        [
            {
                "name": "dev-user",
                "user": {
                    "client-certificate-data": base64.b64encode(b"CERTDATA").decode(),
                    "client-key-data": base64.b64encode(b"KEYDATA").decode(),
                },
            }
        ],
    )
    config = load_kubeconfig(kc)
    assert config.client_cert_file is not None
    assert config.client_key_file is not None
    assert Path(config.client_cert_file).read_bytes() == b"CERTDATA"
    assert Path(config.client_key_file).read_bytes() == b"KEYDATA"


async def test_kubeconfig_token_file_is_reread_when_it_rotates(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    kc = _write_kubeconfig(
        tmp_path / "config", [{"name": "dev-user", "user": {"tokenFile": "token"}}]
    )
    config = load_kubeconfig(kc)
    assert isinstance(config.token_source, TokenFile)
    assert await config.token_source.authorization() == "Bearer first"
    _rotate(token, "second")
    assert await config.token_source.authorization() == "Bearer second"


async def test_exec_plugin_credentials_refresh_on_demand_and_on_expiry(tmp_path: Path) -> None:
    source = tmp_path / "issued"
    source.write_text("tok-1")
    plugin = tmp_path / "plugin.sh"
    runs_log = tmp_path / "runs"
    plugin.write_text(
        "#!/bin/sh\n"
        f"echo run >> {runs_log}\n"
        f'echo "{{\\"apiVersion\\": \\"client.authentication.k8s.io/v1\\", '
        f'\\"kind\\": \\"ExecCredential\\", \\"status\\": {{\\"token\\": \\"$(cat {source})\\", '
        f'\\"expirationTimestamp\\": \\"2030-01-01T00:00:00Z\\"}}}}"\n'
    )
    plugin.chmod(0o755)
    kc = _write_kubeconfig(
        tmp_path / "config",
        [
            {
                "name": "dev-user",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": str(plugin),
                    }
                },
            }
        ],
    )
    now = [dt.datetime(2029, 12, 31, tzinfo=dt.UTC)]
    config = load_kubeconfig(kc, wall_clock=lambda: now[0])
    creds = config.token_source
    assert isinstance(creds, KubeconfigCredentials)
    assert runs_log.read_text().count("run") == 1  # once at load time, not twice
    assert await creds.authorization() == "Bearer tok-1"
    runs = creds.loads

    source.write_text("tok-2")
    assert await creds.authorization() == "Bearer tok-1"  # cached: not expired yet
    assert creds.loads == runs
    await creds.refresh()  # what the client does after a 401
    assert await creds.authorization() == "Bearer tok-2"

    source.write_text("tok-3")
    now[0] = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)  # past expiry (minus the skew)
    assert await creds.authorization() == "Bearer tok-3"
    assert creds.loads == runs + 2


def test_missing_context_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    kc = _write_kubeconfig(tmp_path / "config", [{"name": "dev-user", "user": {"token": "a"}}])
    with pytest.raises(ConfigError, match="nope"):
        load_kubeconfig(kc, context="nope")
    with pytest.raises(ConfigError, match="no kubeconfig found"):
        load_kubeconfig(tmp_path / "absent")


def _service_account(tmp_path: Path, *, namespace: str | None = "team-a") -> Path:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token-1")
    (sa / "ca.crt").write_bytes(CA_PEM)
    if namespace is not None:
        (sa / "namespace").write_text(namespace)
    return sa


ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


async def test_in_cluster_service_account_with_token_rotation(tmp_path: Path) -> None:
    sa = _service_account(tmp_path)
    config = load_incluster_config(environ=ENV, service_account_dir=sa)
    assert config.server == "https://10.96.0.1:443"
    assert config.namespace == "team-a"
    assert config.ca_file == str(sa / "ca.crt")
    assert config.context == "in-cluster"
    assert config.token_source is not None
    assert await config.token_source.authorization() == "Bearer sa-token-1"
    _rotate(sa / "token", "sa-token-2")
    assert await config.token_source.authorization() == "Bearer sa-token-2"


def test_in_cluster_ipv6_host_and_missing_namespace_file(tmp_path: Path) -> None:
    sa = _service_account(tmp_path, namespace=None)
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    config = load_incluster_config(environ=env, service_account_dir=sa)
    assert config.server == "https://[fd00::1]:6443"
    assert config.namespace == "default"


def test_in_cluster_outside_a_pod_is_a_clear_error(tmp_path: Path) -> None:
    sa = _service_account(tmp_path)
    with pytest.raises(ConfigError, match="not running in a cluster"):
        load_incluster_config(environ={}, service_account_dir=sa)


def test_load_config_prefers_kubeconfig_env_then_in_cluster(tmp_path: Path) -> None:
    sa = _service_account(tmp_path)
    kc = _write_kubeconfig(tmp_path / "config", [{"name": "dev-user", "user": {"token": "a"}}])
    both = {**ENV, "KUBECONFIG": str(kc)}
    assert load_config(environ=both, service_account_dir=sa).context == "dev"
    assert load_config(environ=ENV, service_account_dir=sa).context == "in-cluster"
    explicit = load_config(kubeconfig=kc, context="lab", environ=ENV, service_account_dir=sa)
    assert explicit.namespace == "apps"
