"""Generated reports people open before the code: EDA, one-pager, course reports, screenshots.

Each report is built from the real data, runs and benchmark results by one command, so it
stays true when the code changes. Nothing here is imported by serving.
"""
