"""Rule families: each turns its section of policies.yaml into engine rules and applies
the effects of the rules that fired. Read any module on its own."""
