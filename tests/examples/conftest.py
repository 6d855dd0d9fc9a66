def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives a page in headless Chromium (/usr/bin/chromium, see scripts/ensure-chromium)"
    )
