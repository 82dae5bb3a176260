from quest.evaluate.cli import main

raise SystemExit(main())
