"""Unit tier: tests that run in the pytest process (in-process servers on loopback, and short
CLI runs to completion, included); none carries the e2e marker. ``make test-unit`` runs them."""
