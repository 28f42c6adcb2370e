"""Tokens of the simulator tests' profiles, shared by the fixtures and the tests."""

T_IP = "0b5e8a7c-3f1d-4c2b-9e6a-00000000a001"
T_OTHER = "0b5e8a7c-3f1d-4c2b-9e6a-00000000a002"
