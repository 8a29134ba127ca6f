"""Tests of the node's storage layer."""
