from stove_ctl.cli import main

raise SystemExit(main())
