from quest.export.cli import main

raise SystemExit(main())
