from gnaexp.cli import main

raise SystemExit(main())
