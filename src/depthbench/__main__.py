from depthbench.cli.main import main

raise SystemExit(main())
