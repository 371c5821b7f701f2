"""One measured run: recorder, sender, engine, observers and target wired together."""
