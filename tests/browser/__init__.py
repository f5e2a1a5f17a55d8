"""Browser tests: the example app driven in headless Chromium through Playwright."""
