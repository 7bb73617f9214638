"""`python -m pipeline ...`: see pipeline.main."""
from pipeline.main import main

main()
