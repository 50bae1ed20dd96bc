"""End-to-end tests: Debian's chromium, headless, against `python -m chorus`."""
