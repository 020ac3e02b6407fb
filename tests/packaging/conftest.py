def pytest_configure(config):
    config.addinivalue_line("markers", "slow: builds the desktop bundle with PyInstaller (tools/package)")
