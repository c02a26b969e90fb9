"""The suite is offline: anything but loopback is refused (pytest-socket, configured in
pyproject.toml), so no test can quietly depend on the internet."""

import socket

import pytest
import pytest_socket


def test_connections_beyond_loopback_are_refused() -> None:
    with (
        pytest.warns(UserWarning, match="192.0.2.1"),
        pytest.raises(pytest_socket.SocketConnectBlockedError),
    ):
        socket.create_connection(("192.0.2.1", 443), timeout=1)
