"""`python -m loihic` is the same as the `loihic` command."""

from loihic.deploy.cli import main

raise SystemExit(main())
