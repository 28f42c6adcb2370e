"""pointperfect_sim: a simulated PointPerfect world (ZTP API, PKI, broker/caster lab, receiver) for tests and demos."""

__version__ = "0.1.0"
