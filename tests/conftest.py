"""Test-suite settings shared by every test (and inherited by the processes they start).

Key files: the suite writes hundreds of them; at the production scrypt cost (2**17,
128 MiB, 0.5-2 s each) that alone would take many minutes. The explicit test-only
override ``TABELLION_TEST_ONLY_SCRYPT_LOG2_N`` lowers the cost of files written by tests
(documented in ledger/crypto.py and docs/operators.md); tests/ledger/test_crypto.py checks the
production cost with the override removed.
"""

from __future__ import annotations

import os

from ledger.crypto import TEST_ONLY_COST_ENV

os.environ.setdefault(TEST_ONLY_COST_ENV, "10")
