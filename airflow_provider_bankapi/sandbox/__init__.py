"""A local Banking API with real mutual TLS, for the demo, the test suite and users' own tests."""
