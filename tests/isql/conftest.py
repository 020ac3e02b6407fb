def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "secret_service: needs a real Secret Service on the session D-Bus "
        "(CI runs it under dbus-run-session with gnome-keyring-daemon)",
    )
