"""`axp view`: a local web viewer over the run folders, and the templates `axp report` shares.

Nothing here is imported by the pytest plugin or by `axp --help`: Starlette, uvicorn and
Jinja2 load only when a page is served or a report is written.
"""
