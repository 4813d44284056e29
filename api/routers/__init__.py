"""One router module per resource of the contract."""
