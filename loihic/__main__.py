"""`python -m loihic` is the same as the `loihic` command."""

from loihic.deploy.cli.main import main

raise SystemExit(main())
