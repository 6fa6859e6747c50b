"""The stock chapter beyond its lesson: CSV files, baselines, the strict evaluation, forecasts."""
