"""The command signing key the test stacks share (workers verify what clients sign)."""

from __future__ import annotations

from awfdrs.signing import CommandSigner

SIGNING_KEY = "awfdrs-test-command-signing-key-0123456789abcdef"
SIGNER = CommandSigner(SIGNING_KEY)
