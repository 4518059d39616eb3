"""What the test suites and the benchmarks share: a local OpenAI-compatible upstream
(`testkit.upstream`), real server processes of the app (`testkit.servers`), a TCP proxy whose
connections can be cut (`testkit.proxy`), and the pytest hooks of every test tree
(`testkit.pytest_plugin`)."""
