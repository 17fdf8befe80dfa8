"""Fails loudly if the private aioquic API the transport relies on moves (see node/transport/mtls.py)."""

import inspect

import aioquic
from aioquic import tls
from aioquic.quic.connection import QuicConnection


def test_aioquic_version_is_the_pinned_one():
    assert aioquic.__version__ == "1.7.2", "node/transport/mtls.py reaches into aioquic 1.7.2 internals: re-check them"


def test_tls_context_private_names():
    context = tls.Context(is_client=False)
    assert context._request_client_certificate is False
    assert context._peer_certificate is None
    assert context._peer_certificate_chain == []
    assert callable(context._server_expect_finished)
    assert callable(context._client_handle_certificate_verify)
    # The server calls _server_expect_finished after the client's CertificateVerify or an empty Certificate.
    assert "_server_expect_finished" in inspect.getsource(tls.Context._server_handle_certificate_verify)
    assert "_server_expect_finished" in inspect.getsource(tls.Context._server_handle_certificate)
    # and handle_message dispatches through the instance attribute our subclass wraps.
    assert "self._client_handle_certificate_verify(" in inspect.getsource(tls.Context._handle_reassembled_message)


def test_quic_connection_private_names():
    assert callable(QuicConnection._initialize)
    source = inspect.getsource(QuicConnection.__init__)
    assert "self._close_event" in source
    assert "self._streams" in source
    assert "self.tls = tls.Context(" in inspect.getsource(QuicConnection._initialize)


def test_ack_delay_private_names():
    # PeerConnection sets the ACK delay, and brings a delayed ACK forward when stream data leaves
    # (piggybacking) or after a burst of datagrams.
    assert "self._ack_delay = K_GRANULARITY" in inspect.getsource(QuicConnection.__init__)
    assert "space.ack_at = now + self._ack_delay" in inspect.getsource(QuicConnection.receive_datagram)
    assert "space.ack_at <= now" in inspect.getsource(QuicConnection._write_application)
    assert "self._spaces" in inspect.getsource(QuicConnection._initialize)
