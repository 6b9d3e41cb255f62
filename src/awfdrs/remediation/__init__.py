"""What an action does (executors) and whether it may do it now (the gate)."""
