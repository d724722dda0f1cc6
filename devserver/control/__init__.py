"""The control API: one versioned JSON contract and the transports that carry it."""
