"""The co-op's local energy ledger: settlement per half-hour, allocation keys from policy, a
double-entry journal in integer pence, corrections, and members' statements."""
