"""LangGraph's own store test files, run against our four stores.

Nothing of LangGraph is copied into this repository: `_sources.py` fetches the test files at
run time (PyPI sdists of the installed versions, or a LangGraph checkout named by
`LANGGRAPH_SOURCE`), and `langmem_suite_plugin.py` swaps our stores in for LangGraph's.
Run `python -m tests.langgraph_suites` for a table of passed/failed/skipped per store and file.
"""
