"""A run's life, claim -> lease -> trade -> finish -> reconcile: loop.py claims, lifecycle.py
carries a run to its end, trade.py and placement.py trade, outcome.py is what the run did;
control.py and slots.py hold the rules the loop applies."""
