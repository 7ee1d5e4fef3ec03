"""The fault campaign: real validator processes behind TCP proxies (``python -m tests.faults``)."""
