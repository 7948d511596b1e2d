//! End-to-end suites; the tests live in tests/*.rs and use `agent-sandbox-testkit`.
