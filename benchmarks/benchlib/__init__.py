"""What the benchmarks share: timing, roofline peaks, the pipeline configurations, their measurement and report.

The scripts in benchmarks/ put this folder's parent on sys.path and import `benchlib.<module>`;
`benchmarks/results.py` writes the results files.
"""
