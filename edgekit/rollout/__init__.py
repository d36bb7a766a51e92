"""Rolling a model out to a fleet: gates before a box switches, health after, and the roll-out summary."""
