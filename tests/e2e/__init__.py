"""End-to-end tests: the demo's stack, its deployments and the Prefect UI in Chromium."""
