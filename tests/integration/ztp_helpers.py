"""Helpers shared by the ztp integration tests."""


def device_calls(sim, profile, hardware_id):
    return sim.calls()["by_device"].get(f"{sim.tokens[profile]}/{hardware_id}", 0)
