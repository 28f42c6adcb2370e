"""Reliability and security suite (issue 7): faults survived, bad input refused, secrets kept."""
