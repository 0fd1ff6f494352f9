"""Reading runs back: query tables over run folders (DuckDB), results with statistics, reports."""
