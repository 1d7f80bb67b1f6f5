"""TLS from a kubeconfig: the cluster's CA bundle and a client certificate, over loopback.

A throwaway CA, server and client certificate are made with the `openssl` command; a small
trio TLS server that requires a client certificate answers one GET with the certificate's
subject, so the test sees that the client trusted the right CA and presented the right
certificate, both read through `load_kubeconfig`.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import orjson
import pytest
import trio
import yaml

from rxkube.streams import PODS, KubeConnectionError, load_kubeconfig, open_client

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _pki(d: Path) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=test-ca",
             "-days", "1", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/O=system:masters/CN=alice")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
                 cwd=d)  # fmt: skip
        extra = ["-extfile", "san.ext"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", *extra, cwd=d)  # fmt: skip


async def _serve(d: Path, task_status: trio.TaskStatus[int]) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(d / "ca.crt"))
    context.load_cert_chain(str(d / "server.crt"), str(d / "server.key"))
    context.verify_mode = ssl.CERT_REQUIRED

    async def handle(stream: trio.SSLStream[trio.SocketStream]) -> None:
        try:
            await stream.do_handshake()
            head = b""
            while b"\r\n\r\n" not in head:
                data = await stream.receive_some(4096)
                if not data:
                    return
                head += data
            peer = stream.getpeercert()
            subject = dict(item[0] for item in peer["subject"]) if peer else {}
            body = orjson.dumps({"kind": "Pod", "metadata": {"name": "x"}, "peer": subject})
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
        except (trio.BrokenResourceError, ssl.SSLError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    listeners = await trio.open_ssl_over_tcp_listeners(0, context, host="127.0.0.1")
    tcp = listeners[0].transport_listener
    assert isinstance(tcp, trio.SocketListener)
    task_status.started(tcp.socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


def _kubeconfig(d: Path, port: int, *, with_cert: bool) -> Path:
    user = {"client-certificate": "client.crt", "client-key": "client.key"} if with_cert else {}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "tls",
        "clusters": [
            {
                "name": "tls",
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    "certificate-authority": "ca.crt",
                },
            }
        ],
        "contexts": [{"name": "tls", "context": {"cluster": "tls", "user": "me"}}],
        "users": [{"name": "me", "user": user}],
    }
    path = d / ("kubeconfig" if with_cert else "kubeconfig-nocert")
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_ca_bundle_and_client_certificate_from_a_kubeconfig(tmp_path: Path) -> None:
    await trio.to_thread.run_sync(_pki, tmp_path)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(_serve, tmp_path)
        config = load_kubeconfig(_kubeconfig(tmp_path, port, with_cert=True))
        async with open_client(config) as client:
            pod = await client.get(PODS, "x", namespace="default")
        assert pod["peer"] == {"organizationName": "system:masters", "commonName": "alice"}

        # Without the client certificate the server refuses the handshake.
        bare = load_kubeconfig(_kubeconfig(tmp_path, port, with_cert=False))
        assert bare.client_cert_file is None
        async with open_client(bare) as client:
            with pytest.raises(KubeConnectionError, match="cannot reach the API server"):
                await client.get(PODS, "x", namespace="default")
        nursery.cancel_scope.cancel()
