"""`make run`: `python -m service.local` (service.local.run)."""

from service.local.run import main

raise SystemExit(main())
