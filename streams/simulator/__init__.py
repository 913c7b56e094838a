"""The simulated trading engine (DESIGN.md section 6): prices, strategies, signals and outcomes.

Example:
    >>> from streams.simulator import SimConfig, Simulator
    >>> sim = Simulator(SimConfig(seed=1, symbols=4, strategies_per_family=2))
    >>> len(sim.symbols), len(sim.strategies)
    (4, 8)
    >>> first = next(iter(sim.events(1)))
    >>> first.topic, first.record["event_id"]
    ('trades', '1-1')
"""

from streams.simulator.config import EPOCH_US, SimConfig
from streams.simulator.engine import SimEvent, Simulator, SimulatorError, Sizer
from streams.simulator.market import REGIMES, Regime

__all__ = ["EPOCH_US", "REGIMES", "Regime", "SimConfig", "SimEvent", "Simulator", "SimulatorError", "Sizer"]
