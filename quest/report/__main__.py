"""python -m quest.report FOLDER: see quest.report."""
from quest.report.build import main

raise SystemExit(main())
