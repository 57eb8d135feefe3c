"""``python -m figureground``."""

from figureground.cli import main

raise SystemExit(main())
