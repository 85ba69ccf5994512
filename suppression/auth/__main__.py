"""``python -m suppression.auth new-token NAME``: a token and the line for the trust file."""

from __future__ import annotations

import os
import sys

from suppression.auth.trustfile import main

if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
